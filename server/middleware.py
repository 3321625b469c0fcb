"""The layers every request passes before and after its route (plain ASGI: no buffering).

* ``RequestMetrics``: status and latency per route template, for ``/metrics``.
* ``ElasticsearchHeaders``: ``X-Elastic-Product: Elasticsearch`` on every response, errors
  included (elasticsearch-py refuses a 2xx answer without it).
* ``RequestGuard``: API key and its privilege, media types and body size, checked before the route runs and
  answered in Elasticsearch's envelope (OpenAI's on ``/v1``). The body limit is enforced
  twice: on ``Content-Length`` at once, and while a chunked body streams in.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference_enrich.server.errors import ApiError
from inference_enrich.server.media import check_media_types, response_media_type
from inference_enrich.server.metrics import ServerMetrics
from inference_enrich.server.security import ApiKeyCheck

PRODUCT_HEADER = (b"x-elastic-product", b"Elasticsearch")
OPENAI_PREFIX = "/v1/"


def error_response(path: str, headers: Headers, error: ApiError) -> Response:
    """``error`` in the envelope the client of ``path`` expects."""
    if path.startswith(OPENAI_PREFIX):
        return JSONResponse(error.openai_body(), error.status, error.headers)
    try:
        media_type = response_media_type(headers)
    except ApiError:  # the error may be about that very header
        media_type = "application/json"
    return JSONResponse(error.elasticsearch_body(), error.status, error.headers, media_type=media_type)


def body_too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "content_too_long_exception",
                    f"request body is too large: {size} bytes, the limit is {limit} bytes")


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_observed)
        finally:
            self.metrics.in_progress.dec()
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - started)


class ElasticsearchHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_product(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), PRODUCT_HEADER]
            await send(message)

        await self.app(scope, receive, send_with_product)


class RequestGuard:
    def __init__(self, app: ASGIApp, api_keys: ApiKeyCheck, max_body_bytes: int) -> None:
        self.app = app
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        try:
            self.api_keys.check(scope["method"], scope["path"], headers.get("authorization"))
            check_media_types(headers)
            declared = int(headers.get("content-length") or 0)
            if declared > self.max_body_bytes:
                raise body_too_large(declared, self.max_body_bytes)
        except ApiError as error:
            return await error_response(scope["path"], headers, error)(scope, receive, send)
        except ValueError:
            invalid = ApiError(400, "illegal_argument_exception", "invalid Content-Length header")
            return await error_response(scope["path"], headers, invalid)(scope, receive, send)
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that raises 413 once a (chunked) body passes the limit; the route's
        exception handler answers it."""
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise body_too_large(received, self.max_body_bytes)
            return message

        return receive_within_limit
