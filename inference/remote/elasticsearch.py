"""``service: elasticsearch_remote``: an inference endpoint of an Elasticsearch cluster.

``POST {url}/_inference/{task_type}/{inference_id}`` with ``{"input": [...]}`` and
``Authorization: ApiKey KEY`` (or basic authentication); the answer is already in our
shapes: ``{"sparse_embedding": [{"is_truncated", "embedding": {token: weight}}]}`` or
``{"text_embedding": [{"embedding": [...]}]}``, one entry per input, in order. Sparse
results are put in our order (highest weight first, weights > 0); ``is_truncated`` is the
cluster's.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence
from urllib.parse import quote

from inference_enrich.inference.errors import RemoteServiceError
from inference_enrich.inference.remote.settings import ElasticsearchRemoteServiceSettings
from inference_enrich.inference.results import (
    SPARSE_EMBEDDING,
    InferenceResult,
    SparseEmbedding,
    TextEmbedding,
)
from inference_enrich.inference.secrets import redact_url


class ElasticsearchInference:
    """Builds the requests of one ``elasticsearch_remote`` endpoint and reads their answers."""

    def __init__(self, settings: ElasticsearchRemoteServiceSettings, task_type: str) -> None:
        self.task_type = task_type
        self.url = f"{settings.url.rstrip('/')}/_inference/{task_type}/{quote(settings.inference_id, safe='')}"
        self.name = f"Elasticsearch {redact_url(settings.url)} (endpoint {settings.inference_id})"
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = settings.resolved_api_key()
        password = settings.resolved_password()
        if api_key:
            self.headers["Authorization"] = f"ApiKey {api_key}"
        elif settings.username is not None and password is not None:
            pair = base64.b64encode(f"{settings.username}:{password}".encode()).decode("ascii")
            self.headers["Authorization"] = f"Basic {pair}"

    def body(self, texts: Sequence[str]) -> dict[str, Any]:
        return {"input": list(texts)}

    def parse(self, body: Any, count: int) -> list[InferenceResult]:
        items = body.get(self.task_type) if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != count:
            raise RemoteServiceError(
                f"{self.name}: expected '{self.task_type}' with {count} results, got "
                f"{len(items) if isinstance(items, list) else type(body).__name__}")
        try:
            return [self._result(item) for item in items]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RemoteServiceError(f"{self.name}: unreadable result in the answer: {error!r}") from None

    def _result(self, item: dict[str, Any]) -> InferenceResult:
        truncated = bool(item.get("is_truncated", False))
        if self.task_type == SPARSE_EMBEDDING:
            weights = {str(token): float(weight) for token, weight in item["embedding"].items()}
            ordered = sorted(((t, w) for t, w in weights.items() if w > 0), key=lambda pair: -pair[1])
            return SparseEmbedding(dict(ordered), truncated)
        return TextEmbedding([float(value) for value in item["embedding"]], truncated)
