"""``POST _inference[/rerank]/{inference_id}`` for rerank endpoints, in Elasticsearch's shapes::

    {"query": "...", "input": ["doc", ...], "top_n": 2, "return_documents": true,
     "task_settings": {"top_n": ..., "return_documents": ...}}
    -> {"rerank": [{"index": 1, "relevance_score": 0.93, "text": "doc"}, ...]}

A rerank request is one query's candidates, scored together: it does not join the embedding
workers' batches. The reranker (a local cross-encoder or a remote service) is loaded at its
endpoint's first request (or at its PUT, ``_update`` or ``--preload``: ``ServerContext.install``),
once per app, and called in a thread so the event loop stays free; one no endpoint uses any more
is dropped.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Sequence

from starlette.requests import Request
from starlette.responses import Response

from inference_enrich.inference import Endpoint, load_reranker
from inference_enrich.inference.rerank_results import Reranker, rerank_response
from inference_enrich.server.errors import ApiError, parse_failure, validation_failed
from inference_enrich.server.media import json_response
from inference_enrich.server.request_parsing import check_unicode, input_texts

RERANK_FIELDS = ("input", "query", "top_n", "return_documents", "task_settings")


def parse_rerank_body(body: dict[str, Any]) -> tuple[str, list[str], int | None, bool | None]:
    """(query, texts, top_n, return_documents) of a rerank request; ``task_settings`` may
    carry the last two, the top-level fields win."""
    for key in body:
        if key not in RERANK_FIELDS:
            raise parse_failure(f"[inference_request] unknown field [{key}]")
    texts = input_texts(body, "inference_request")
    query = body.get("query")
    if query is None:
        raise validation_failed("Field [query] cannot be null")
    if not isinstance(query, str):
        raise validation_failed("Field [query] must be a string")
    check_unicode(query, "Field [query]")
    settings = body.get("task_settings") or {}
    if not isinstance(settings, dict):
        raise validation_failed("Field [task_settings] must be an object")
    top_n = body.get("top_n", settings.get("top_n"))
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise validation_failed("Field [top_n] must be a positive integer")
    return_documents = body.get("return_documents", settings.get("return_documents"))
    if return_documents is not None and not isinstance(return_documents, bool):
        raise validation_failed("Field [return_documents] must be a boolean")
    return query, texts, top_n, return_documents


class Rerankers:
    """The loaded rerankers of one app (``ServerContext.rerankers``), by endpoint fingerprint."""

    def __init__(self) -> None:
        self._loaded: dict[str, Reranker] = {}
        self._lock = threading.Lock()

    def get(self, endpoint: Endpoint) -> Reranker:
        key = endpoint.fingerprint()
        with self._lock:  # one load per endpoint, even when its first requests arrive together
            reranker = self._loaded.get(key)
            if reranker is None:
                reranker = self._loaded[key] = load_reranker(endpoint)
            return reranker

    def retire_unused(self, endpoints: Sequence[Endpoint]) -> None:
        """Drop the rerankers none of ``endpoints`` uses (after ``_update`` or DELETE). It
        runs on the event loop, so it never waits for the lock a load holds; a reranker a
        request still holds answers it, and one loaded meanwhile goes at the next call."""
        used = {endpoint.fingerprint() for endpoint in endpoints}
        for key in [key for key in list(self._loaded) if key not in used]:
            self._loaded.pop(key, None)

    @staticmethod
    def of(request: Request) -> "Rerankers":
        return request.app.state.context.rerankers


async def perform_rerank(request: Request, endpoint: Endpoint, body: dict[str, Any],
                         timeout_s: float | None) -> Response:
    query, texts, top_n, return_documents = parse_rerank_body(body)

    def rerank() -> dict[str, Any]:
        return rerank_response(Rerankers.of(request).get(endpoint).rerank(query, texts, top_n, return_documents))

    try:
        answer = await asyncio.wait_for(asyncio.to_thread(rerank), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, "status_exception", f"Request timed out after [{timeout_s}s]") from None
    except ApiError:
        raise
    except Exception as error:
        raise ApiError(500, "status_exception", f"inference on [{endpoint.inference_id}] failed: {error}") from None
    return json_response(request, answer)
