"""``enrich serve``: its options and how it starts uvicorn.

``pipelines/cli.py`` only calls ``add_serve_options`` and ``run_serve``; the web stack is
imported when the command runs, so ``enrich run`` never pays for it.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from inference_enrich.server.security import API_KEYS_ENV, MANAGE, MONITOR

DEFAULT_PORT = 9200
MIB = 1024 * 1024

SERVE_SUMMARY = "serve Elasticsearch's inference API (and OpenAI embeddings) over HTTP"
SERVE_DESCRIPTION = ("Answer Elasticsearch's inference API over HTTP with the local models: "
                     "concurrent requests to one model are batched together by a token budget.")
SERVE_EPILOG = f"""\
Routes (Elasticsearch's, so elasticsearch-py and its integrations work unchanged):
  POST   /_inference[/TASK_TYPE]/ID   {{"input": "..." | [...], "task_settings": {{...}}}}
  PUT    /_inference/TASK_TYPE/ID     {{"service": "transformers", "service_settings": {{...}}}}
  PUT    /_inference[/TASK_TYPE]/ID/_update
  GET    /_inference[/TASK_TYPE]/ID|_all    DELETE /_inference[/TASK_TYPE]/ID
  POST   /v1/embeddings               OpenAI-compatible, text_embedding endpoints (model = ID)
  GET    /v1/models                   the text_embedding endpoints, OpenAI's list
  GET    /   /_health   /metrics (Prometheus)

Endpoints: one store for every enrich command: $ENRICH_HOME/endpoints.yaml, else
~/.config/inference-enrich/endpoints.yaml ($XDG_CONFIG_HOME), over the packaged endpoints;
--endpoints FILE uses FILE instead. Every PUT, _update and DELETE changes only its own
endpoint in the file as it is then (under a lock, written atomically), so other servers on
the same file and hand edits are kept; what they add shows here at the next request.
The packaged endpoints cannot be deleted; _update shadows them. service "elasticsearch"
with model_id .elser_model_2* or .multilingual-e5-small* maps to a packaged model (the
answer says which, in a Warning header).

Models: a PUT/_update may name a packaged model (splade-tiny, all-minilm-l6-v2) or a
directory under a --model-root; anything else is one 400 that says nothing of the disk.

API keys and privileges (Elasticsearch's): {API_KEYS_ENV}=KEY[:ROLE],... and/or
--api-keys-file FILE (a "KEY [ROLE]" per line). ROLE is {MONITOR} (GET endpoints,
POST inference, /v1) or {MANAGE} (also PUT, _update, DELETE; the default for a key
without a role). A key without the privilege gets 403 security_exception. Clients send
"Authorization: ApiKey KEY" (elasticsearch-py: api_key=KEY) or "Authorization: Bearer KEY"
(openai: api_key=KEY). /_health stays open. With no key the server is open (it says so).

Overload: each model holds at most --max-queued-texts texts (queued, tokenising or being
embedded); a request beyond that gets 429 es_rejected_execution_exception with
Retry-After, counted in /metrics as enrich_rejected_requests_total.

SIGTERM or Ctrl-C: stop accepting connections, answer the requests in flight (for up to
--shutdown-timeout seconds), exit."""


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    """The flags of ``enrich serve`` (its parser is made by ``pipelines/cli.py`` like every
    other command's, with ``SERVE_SUMMARY``, ``SERVE_DESCRIPTION`` and ``SERVE_EPILOG``)."""
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    serve.add_argument("--endpoints", metavar="FILE",
                       help="endpoints YAML over the packaged ones, re-read when it changes and "
                       "changed one endpoint at a time by PUT/_update/DELETE (default: the endpoint "
                       "store every enrich command reads)")
    serve.add_argument("--model-root", "--model_root", dest="model_roots", action="append", default=[],
                       metavar="DIR", help="a directory whose model directories PUT may name "
                       "(repeatable; default: none, only the packaged models)")
    serve.add_argument("--max-queued-texts", "--max_queued_texts", dest="max_queued_texts", type=int,
                       default=2048, metavar="N",
                       help="texts one model may hold before requests get 429 (default: 2048)")
    serve.add_argument("--preload", action="store_true",
                       help="load every endpoint's model before listening (default: on first use)")
    serve.add_argument("--api-keys-file", "--api_keys_file", dest="api_keys_file", metavar="FILE",
                       help=f"accepted API keys, 'KEY [ROLE]' per line (also: {API_KEYS_ENV}); none: open")
    serve.add_argument("--max-body-bytes", "--max_body_bytes", dest="max_body_bytes", type=int,
                       default=10 * MIB, metavar="N", help="larger request bodies get 413 (default: 10 MiB)")
    serve.add_argument("--max-inputs", "--max_inputs", dest="max_inputs", type=int, default=1024,
                       metavar="N", help="texts per request (default: 1024)")
    serve.add_argument("--request-timeout", "--request_timeout", dest="request_timeout", type=float,
                       default=30.0, metavar="SECONDS",
                       help="default for a request's ?timeout= (default: 30, as Elasticsearch)")
    serve.add_argument("--shutdown-timeout", "--shutdown_timeout", dest="shutdown_timeout", type=float,
                       default=60.0, metavar="SECONDS",
                       help="on SIGTERM, how long requests in flight may take to finish (default: 60)")
    serve.add_argument("--batch-wait-ms", "--batch_wait_ms", dest="batch_wait_ms", type=float,
                       default=5.0, metavar="MS",
                       help="how long an idle model waits for more requests to join the first (default: 5)")
    serve.add_argument("--reorder-window-ms", "--reorder_window_ms", dest="reorder_window_ms", type=float,
                       default=250.0, metavar="MS",
                       help="how much later than the oldest waiting text another may arrive and still "
                       "share its forward pass; a wider window sorts more by length but lets more "
                       "newcomers overtake older texts, which lengthens the tail latency; 0: no two "
                       "requests share a pass (default: 250)")
    serve.add_argument("--max-batch-tokens", "--max_batch_tokens", dest="max_batch_tokens", type=int,
                       default=1024, metavar="N", help="padded tokens per forward pass (default: 1024)")
    serve.add_argument("--max-batch-size", "--max_batch_size", dest="max_batch_size", type=int,
                       default=64, metavar="N", help="texts per forward pass (default: 64)")
    serve.add_argument("--num-threads", "--num_threads", dest="num_threads", type=int, metavar="N",
                       help="torch threads (default: torch's choice)")
    serve.add_argument("--no-access-log", "--no_access_log", dest="access_log", action="store_false",
                       help="do not log each request")


def run_serve(args: argparse.Namespace) -> int:
    """Build the app (endpoints and keys are checked here, before listening) and serve it
    until SIGTERM / Ctrl-C."""
    import uvicorn

    from inference_enrich.inference.endpoint_store import store_path
    from inference_enrich.server.app import create_app
    from inference_enrich.server.context import ServerSettings
    from inference_enrich.server.batch_policy import BatchPolicy
    from inference_enrich.server.security import load_api_keys

    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("inference_enrich").setLevel(logging.INFO)
    settings = ServerSettings(
        endpoints_path=Path(args.endpoints) if args.endpoints else store_path(),
        max_body_bytes=args.max_body_bytes,
        max_inputs=args.max_inputs,
        request_timeout_s=args.request_timeout,
        batch=BatchPolicy(args.max_batch_tokens, args.max_batch_size, args.batch_wait_ms / 1000,
                          args.reorder_window_ms / 1000),
        preload=args.preload,
        api_keys=load_api_keys(args.api_keys_file),
        model_roots=tuple(args.model_roots),
        max_queued_texts=args.max_queued_texts,
    )
    app = create_app(settings)
    context = app.state.context
    roots = ", ".join(map(str, context.model_roots.roots)) or "none (packaged models only)"
    print(f"enrich serve: {len(context.store)} endpoints from {settings.endpoints_path} over the packaged "
          f"ones{'' if settings.endpoints_path.exists() else ' (not written yet)'}; model roots: {roots}; "
          f"{context.api_keys.describe()}; http://{args.host}:{args.port}", file=sys.stderr)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, lifespan="on", access_log=args.access_log,
        # On SIGTERM uvicorn stops accepting and waits this long for requests in flight.
        timeout_graceful_shutdown=math.ceil(args.shutdown_timeout),
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
