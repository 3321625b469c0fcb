"""``service: openai``: the wire format of ``POST /v1/embeddings``.

Request ``{"model", "input": [...], "encoding_format": "float"}`` (plus ``dimensions`` and
``user`` when set), ``Authorization: Bearer KEY``; answer ``{"data": [{"index": i,
"embedding": [...]}, ...]}``, put back in input order by ``index``. OpenAI reports no
truncation (it refuses an input over the model's limit), so ``is_truncated`` is false.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from inference_enrich.inference.errors import RemoteServiceError
from inference_enrich.inference.remote.settings import OpenAIServiceSettings
from inference_enrich.inference.results import TextEmbedding
from inference_enrich.inference.secrets import redact_url


class OpenAIEmbeddings:
    """Builds the requests of one ``openai`` endpoint and reads their answers."""

    def __init__(self, settings: OpenAIServiceSettings, task_settings: Mapping[str, Any]) -> None:
        self.url = settings.url
        self.name = f"openai service {redact_url(settings.url)} (model {settings.model_id})"
        self._fields: dict[str, Any] = {"model": settings.model_id, "encoding_format": "float"}
        if settings.dimensions is not None:
            self._fields["dimensions"] = settings.dimensions
        if task_settings.get("user"):
            self._fields["user"] = task_settings["user"]
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = settings.resolved_api_key()
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        if settings.organization_id:
            self.headers["OpenAI-Organization"] = settings.organization_id

    def body(self, texts: Sequence[str]) -> dict[str, Any]:
        return {**self._fields, "input": list(texts)}

    def parse(self, body: Any, count: int) -> list[TextEmbedding]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != count:
            raise RemoteServiceError(f"{self.name}: expected 'data' with {count} embeddings, got "
                                     f"{len(data) if isinstance(data, list) else type(body).__name__}")
        try:
            ordered = sorted(data, key=lambda item: item["index"])
            if [item["index"] for item in ordered] != list(range(count)):  # else texts get others' vectors
                raise RemoteServiceError(f"{self.name}: the answer's indices are not 0..{count - 1}: "
                                         f"{[item['index'] for item in ordered][:10]}")
            return [TextEmbedding([float(value) for value in item["embedding"]], False) for item in ordered]
        except (KeyError, TypeError, ValueError) as error:
            raise RemoteServiceError(f"{self.name}: unreadable embedding in the answer: {error!r}") from None
