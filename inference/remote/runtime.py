"""``RemoteRuntime``: the seam for endpoints whose model runs elsewhere.

Where a local runtime tokenises and embeds, a remote one takes texts and gives back a
result or an exception per text (``infer``): nothing is tokenised here, texts are cut into
requests of ``max_inputs_per_request`` by count and sent together (up to
``max_concurrent_requests`` in flight, under the rate limit; see ``http.py``).

Which failure costs what:

* 4xx naming the input (400, 413, 422): the batch is bisected until the text the service
  refuses is alone; that text gets a ``RemoteInputError`` with the service's message (one
  dead letter), every other text its result.
* 429, 5xx, timeouts, lost connections: retried with backoff; once the retries are spent,
  ``RemoteServiceError`` is raised and the job fails (no record is silently lost).
* any other 4xx (401, 403, 404, ...): ``RemoteServiceError`` at once. ``probe`` sends one
  text at start-up so a wrong key or URL fails there, in one line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Awaitable, Protocol, Sequence

from inference_enrich.inference.endpoints import Endpoint
from inference_enrich.inference.services import SERVICES
from inference_enrich.inference.errors import EndpointConfigError, RemoteInputError, RemoteServiceError
from inference_enrich.inference.remote.elasticsearch import ElasticsearchInference
from inference_enrich.inference.remote.http import (
    CallStats,
    ClientSettings,
    RemoteClient,
    client_for,
    release_client,
    error_message,
)
from inference_enrich.inference.remote.openai import OpenAIEmbeddings
from inference_enrich.inference.remote.settings import ElasticsearchRemoteServiceSettings, OpenAIServiceSettings
from inference_enrich.inference.results import InferenceResult
from inference_enrich.inference.secrets import reveal

BAD_INPUT_STATUSES = (400, 413, 422)
"""Answers that blame the request's content: bisected down to the text at fault."""
PROBE_TEXT = "probe"


class WireFormat(Protocol):
    """How one service's requests and answers look (``openai.py``, ``elasticsearch.py``)."""

    url: str
    name: str
    headers: dict[str, str]

    def body(self, texts: Sequence[str]) -> dict[str, Any]: ...

    def parse(self, body: Any, count: int) -> Sequence[InferenceResult]: ...


@dataclass(frozen=True)
class RemoteOutcome:
    """One call's results (``results[i]`` for ``texts[i]``) and what its requests did."""

    results: list[InferenceResult | RemoteInputError]
    stats: CallStats


class RemoteRuntime:
    """Calls one remote endpoint; safe to share between threads (the client serialises
    nothing but bounds the requests in flight for the whole process)."""

    tokenizes_locally = False  # the service tokenises; texts go out by count

    def __init__(self, endpoint: Endpoint) -> None:
        if endpoint.service_info.tokenizes_locally:
            raise ValueError(f"endpoint '{endpoint.inference_id}' is not remote ({endpoint.service})")
        self.task_type = endpoint.task_type
        settings = SERVICES[endpoint.service].settings.model_validate(
            dict(endpoint.service_settings), context={"task_type": endpoint.task_type})
        try:
            if isinstance(settings, OpenAIServiceSettings):
                self._wire: WireFormat = OpenAIEmbeddings(settings, endpoint.task_settings)
            elif isinstance(settings, ElasticsearchRemoteServiceSettings):
                self._wire = ElasticsearchInference(settings, endpoint.task_type)
            else:
                raise TypeError(f"endpoint '{endpoint.inference_id}': the {endpoint.service} service embeds nothing")
        except ValueError as error:  # a credential's environment variable is not set
            raise EndpointConfigError(
                f"endpoint '{endpoint.inference_id}': service_settings.{error}") from None
        self.max_inputs_per_request = settings.max_inputs_per_request
        self._client_key = _client_key(endpoint)
        self._client: RemoteClient = client_for(
            self._client_key, self._wire.name,
            ClientSettings(
                requests_per_minute=settings.requests_per_minute(endpoint.service),
                max_concurrent_requests=settings.max_concurrent_requests,
                timeout_s=settings.timeout_s,
                max_retries=settings.max_retries,
                initial_backoff_s=settings.initial_backoff_s,
                max_backoff_s=settings.max_backoff_s,
                ca_certs=getattr(settings, "ca_certs", None),
                verify_certs=getattr(settings, "verify_certs", True),
            ))

    @property
    def name(self) -> str:
        return self._wire.name

    def close(self) -> None:
        """Give the shared client back (the last runtime using it closes it)."""
        release_client(self._client_key, self._client)

    def submit(self, texts: Sequence[str]) -> Future:
        """A future of the ``RemoteOutcome`` of ``texts`` (raises ``RemoteServiceError``)."""
        return self._client.submit(self._infer_all(list(texts)))

    def infer(self, texts: Sequence[str]) -> RemoteOutcome:
        return self.submit(texts).result()

    def submit_probe(self) -> Future:
        """A future of one text's result: fails with one clear ``RemoteServiceError`` line when
        the URL, the credentials or the remote endpoint are wrong."""
        return self._client.submit(self._probe())

    def probe(self) -> InferenceResult:
        return self.submit_probe().result()

    async def _probe(self) -> InferenceResult:
        stats = CallStats()
        answer = await self._client.post_json(self._wire.url, self._wire.body([PROBE_TEXT]),
                                              self._wire.headers, stats, retry_connection_errors=False)
        if answer.status != 200:
            raise RemoteServiceError(f"{self.name} refused a test request: HTTP {answer.status}: "
                                     f"{error_message(answer.body)}")
        (result,) = self._wire.parse(answer.body, 1)
        return result

    async def _infer_all(self, texts: list[str]) -> RemoteOutcome:
        stats = CallStats()
        size = self.max_inputs_per_request
        parts = await _all_or_none([self._infer_part(texts[start:start + size], stats)
                                    for start in range(0, len(texts), size)])
        return RemoteOutcome([result for part in parts for result in part], stats)

    async def _infer_part(self, texts: list[str], stats: CallStats) -> list[InferenceResult | RemoteInputError]:
        answer = await self._client.post_json(self._wire.url, self._wire.body(texts),
                                              self._wire.headers, stats)
        if 200 <= answer.status < 300:
            results: list[InferenceResult | RemoteInputError] = [*self._wire.parse(answer.body, len(texts))]
            stats.add_reported_tokens(answer.body)
            return results
        if answer.status not in BAD_INPUT_STATUSES:
            raise RemoteServiceError(f"{self.name}: HTTP {answer.status}: {error_message(answer.body)}")
        if len(texts) == 1:
            return [RemoteInputError(f"{self.name} refused the text: HTTP {answer.status}: "
                                     f"{error_message(answer.body)}")]
        middle = len(texts) // 2
        halves = await _all_or_none([self._infer_part(texts[:middle], stats),
                                     self._infer_part(texts[middle:], stats)])
        return halves[0] + halves[1]


async def _all_or_none(calls: list[Awaitable]) -> list:
    """``asyncio.gather`` that cancels the other calls when one raises (no request is left
    running for a call that has already failed)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


def _client_key(endpoint: Endpoint) -> str:
    """Endpoints with equal remote settings share a client (and so one rate limit); the key
    is a digest, so it holds no secret."""
    settings = json.dumps([endpoint.service, endpoint.task_type, reveal(dict(endpoint.service_settings))],
                          sort_keys=True, default=str)
    return hashlib.sha256(settings.encode()).hexdigest()
