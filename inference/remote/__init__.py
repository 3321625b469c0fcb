"""Remote inference services (``openai``, ``elasticsearch_remote``).

``settings.py`` declares their settings (the endpoint loader imports it, so this package
imports nothing eagerly); ``rate_limit.py`` and ``http.py`` are the client with its rate
limit, concurrency bound and retries; ``openai.py`` and ``elasticsearch.py`` each service's
wire format; ``runtime.py`` the ``RemoteRuntime`` that the pipeline, ``enrich infer`` and
``enrich serve`` use for these endpoints.
"""
