"""Remote rerank: a rerank endpoint whose cross-encoder runs elsewhere.

Two wire formats:

* ``elasticsearch_remote``: ``POST {url}/_inference/rerank/{inference_id}`` with
  ``{"query", "input", "top_n"?, "return_documents"}``, answered in our shape already:
  ``{"rerank": [{"index", "relevance_score", "text"?}]}``.
* ``rerank_api``: a Cohere/Jina-style ``POST .../v1/rerank`` (what Cohere, Jina, infinity
  and TEI's compatible route serve) with ``{"model"?, "query", "documents", "top_n"?,
  "return_documents"}``, answered ``{"results": [{"index", "relevance_score",
  "document"?: {"text"} or "text"}]}``.

Requests are single calls (a rerank request carries one query's candidates): 429, 5xx and
lost connections are retried with the endpoint's backoff settings, anything else is a
``RemoteServiceError`` with the server's words; a malformed answer is one too.
"""

from __future__ import annotations

import base64
import json
import random
import time
import urllib.error
import urllib.request
from typing import Any, Sequence
from urllib.parse import quote

from inference_enrich.inference.errors import RemoteServiceError
from inference_enrich.inference.remote.http import error_message
from inference_enrich.inference.endpoints import Endpoint
from inference_enrich.inference.services import SERVICES
from inference_enrich.inference.errors import EndpointConfigError
from inference_enrich.inference.remote.settings import (
    ELASTICSEARCH_REMOTE,
    ElasticsearchRemoteServiceSettings,
    RerankApiServiceSettings,
    secret_from,
)
from inference_enrich.inference.rerank_results import RankedDocument, rerank_options
from inference_enrich.inference.results import RERANK
from inference_enrich.inference.secrets import redact_url
RETRY_STATUSES = (429, 500, 502, 503, 504)


class RemoteReranker:
    """Reranks through one remote endpoint (``elasticsearch_remote`` or ``rerank_api``)."""

    task_type = RERANK

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        settings = SERVICES[endpoint.service].settings.model_validate(
            dict(endpoint.service_settings), context={"task_type": endpoint.task_type})
        if not isinstance(settings, ElasticsearchRemoteServiceSettings | RerankApiServiceSettings):
            raise TypeError(f"endpoint '{endpoint.inference_id}': the {endpoint.service} service does not rerank")
        self._settings = settings
        try:
            self._headers = self._auth_headers(endpoint, settings)
        except ValueError as error:  # a credential's environment variable is not set
            raise EndpointConfigError(f"endpoint '{endpoint.inference_id}': service_settings.{error}") from None
        self._url = (f"{settings.url.rstrip('/')}/_inference/rerank/{quote(settings.inference_id, safe='')}"
                     if isinstance(settings, ElasticsearchRemoteServiceSettings) else settings.url)
        self._name = f"{endpoint.service} {redact_url(self._url)}"

    @staticmethod
    def _auth_headers(endpoint: Endpoint, settings: Any) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if endpoint.service == ELASTICSEARCH_REMOTE:
            api_key, password = settings.resolved_api_key(), settings.resolved_password()
            if api_key:
                headers["Authorization"] = f"ApiKey {api_key}"
            elif settings.username is not None and password is not None:
                pair = base64.b64encode(f"{settings.username}:{password}".encode()).decode("ascii")
                headers["Authorization"] = f"Basic {pair}"
        else:
            api_key = secret_from(settings.api_key, settings.api_key_env, "api_key_env")
            if api_key:
                headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None,
               return_documents: bool | None = None) -> list[RankedDocument]:
        top_n, return_documents = rerank_options(self._endpoint.task_settings, top_n, return_documents)
        if not documents:
            return []
        if self._endpoint.service == ELASTICSEARCH_REMOTE:
            body: dict[str, Any] = {"query": query, "input": list(documents), "return_documents": return_documents}
        else:
            body = {"query": query, "documents": list(documents), "return_documents": return_documents}
            if isinstance(self._settings, RerankApiServiceSettings) and self._settings.model_id:
                body["model"] = self._settings.model_id
        if top_n is not None:
            body["top_n"] = top_n
        answer = self._post(body)
        try:
            items = answer[RERANK] if self._endpoint.service == ELASTICSEARCH_REMOTE else _results(answer)
            ranked = [_ranked(item, documents, return_documents) for item in items]
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise RemoteServiceError(f"{self._name}: unreadable rerank answer: {error!r}") from None
        ranked.sort(key=lambda document: -document.relevance_score)
        return ranked[:top_n]

    def _post(self, body: dict[str, Any]) -> Any:
        settings = self._settings
        data = json.dumps(body).encode()
        for attempt in range(settings.max_retries + 1):
            if attempt:
                cap = min(settings.max_backoff_s, settings.initial_backoff_s * 2 ** (attempt - 1))
                time.sleep(random.uniform(0, cap))
            request = urllib.request.Request(self._url, data=data, headers=self._headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                if error.code in RETRY_STATUSES and attempt < settings.max_retries:
                    continue
                try:
                    reason = error_message(json.loads(error.read()))
                except ValueError:
                    reason = error.reason
                raise RemoteServiceError(f"{self._name} answered {error.code}: {reason}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt < settings.max_retries:
                    continue
                raise RemoteServiceError(f"{self._name}: {getattr(error, 'reason', error)}") from None
        raise AssertionError("unreachable")


def _results(answer: Any) -> list[dict[str, Any]]:
    """The result list of a Cohere/Jina answer (``{"results": [...]}``) or of TEI's bare list."""
    return answer if isinstance(answer, list) else answer["results"]


def _ranked(item: dict[str, Any], documents: Sequence[str], return_documents: bool) -> RankedDocument:
    index = int(item["index"])
    if not 0 <= index < len(documents):
        raise IndexError(f"index {index} of {len(documents)} documents")
    score = float(item["relevance_score"] if "relevance_score" in item else item["score"])
    return RankedDocument(index, score, documents[index] if return_documents else None)
