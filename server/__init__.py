"""``enrich serve``: Elasticsearch's inference API over HTTP, on the same endpoints as the pipeline.

``create_app`` (``app.py``) builds the ASGI app; ``cli.py`` holds the ``serve`` command's
options and start-up.
Requests to one model are batched together by a worker thread per model
(``model_worker.py``); endpoints persist in the pipeline's YAML format (``store.py``).
"""
