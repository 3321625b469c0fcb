"""The ASGI application: Elasticsearch's inference API, OpenAI embeddings, health, metrics.

    app = create_app(ServerSettings(endpoints_path=Path("endpoints.yaml")))

Every answer, errors included, carries ``X-Elastic-Product: Elasticsearch``; every error is
in Elasticsearch's envelope (OpenAI's on ``/v1``).
"""

from __future__ import annotations

import asyncio
import logging
import platform
from contextlib import asynccontextmanager
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inference_enrich import __version__
from inference_enrich.inference import EndpointConfigError, IncompatibleTaskTypeError
from inference_enrich.server import inference_api, openai_api
from inference_enrich.server.context import ServerContext, ServerSettings
from inference_enrich.server.errors import ApiError, bad_request
from inference_enrich.server.media import ELASTICSEARCH_VERSION, json_response
from inference_enrich.server.middleware import (
    ElasticsearchHeaders,
    RequestGuard,
    RequestMetrics,
    error_response,
)

LOG = logging.getLogger(__name__)

async def root(request: Request) -> Response:
    """``GET /``: what Elasticsearch answers, so clients that read the version work."""
    return json_response(request, {
        "name": platform.node() or "inference-enrich",
        "cluster_name": "inference-enrich",
        "cluster_uuid": "_na_",
        "version": {
            "number": ELASTICSEARCH_VERSION,
            "build_flavor": "default",
            "build_type": "inference-enrich",
            "build_hash": f"inference-enrich-{__version__}",
            "build_date": "",
            "build_snapshot": False,
            "lucene_version": "",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    })


async def health(request: Request) -> Response:
    context = ServerContext.of(request)
    return json_response(request, {
        "status": "green",
        "endpoints": len(context.store),
        "loaded_models": context.pool.loaded_models(),
    })


async def metrics(request: Request) -> Response:
    context = ServerContext.of(request)
    return Response(context.metrics.exposition(), media_type=context.metrics.content_type)


async def _api_error(request: Request, error: Exception) -> Response:
    return error_response(request.url.path, request.headers, error)  # type: ignore[arg-type]


async def _domain_error(request: Request, error: Exception) -> Response:
    """Errors the inference layer raises (worded as Elasticsearch words them)."""
    return error_response(request.url.path, request.headers, bad_request(str(error)))


async def _routing_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    uri, method = request.url.path, request.method
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        api_error = ApiError(405, "method_not_allowed",
                             f"Incorrect HTTP method for uri [{uri}] and method [{method}], allowed: [{allowed}]")
    else:
        api_error = ApiError(400, "illegal_argument_exception",
                             f"no handler found for uri [{uri}] and method [{method}]")
    return error_response(uri, request.headers, api_error)


async def _unexpected_error(request: Request, error: Exception) -> Response:
    """Outside every middleware (Starlette's last resort), so it adds the product header itself."""
    LOG.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    body = ApiError(500, "exception", "internal server error (see the server log)").elasticsearch_body()
    return JSONResponse(body, 500, {"X-Elastic-Product": "Elasticsearch"})


def create_app(settings: ServerSettings) -> Starlette:
    """The application with its endpoints loaded from ``settings.endpoints_path``."""
    context = ServerContext(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.preload:
            await asyncio.gather(*(context.install(endpoint, None, _nothing)
                                   for endpoint in context.store.list()))
        yield
        # In-flight requests have been answered by now (uvicorn waits for them on SIGTERM).
        await asyncio.to_thread(context.pool.close, settings.request_timeout_s)

    routes = [
        Route("/", root, methods=["GET"]),
        Route("/_health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *inference_api.ROUTES,
        *openai_api.ROUTES,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMetrics, metrics=context.metrics),
            Middleware(ElasticsearchHeaders),
            Middleware(RequestGuard, api_keys=context.api_keys, max_body_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            ApiError: _api_error,
            IncompatibleTaskTypeError: _domain_error,
            EndpointConfigError: _domain_error,
            HTTPException: _routing_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.context = context
    return app


async def _nothing() -> None:
    """``install``'s commit for endpoints already in the store (preloading)."""
