"""What a running server holds: its settings, endpoints, model workers and metrics."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from starlette.requests import Request

from inference_enrich.inference import Endpoint
from inference_enrich.inference.errors import RemoteInputError
from inference_enrich.inference.results import RERANK
from inference_enrich.server.errors import ApiError
from inference_enrich.server.metrics import ServerMetrics
from inference_enrich.server.admission import Admission
from inference_enrich.server.model_pool import ModelPool, model_key
from inference_enrich.server.model_sources import ModelRoots
from inference_enrich.server.batch_policy import BatchPolicy
from inference_enrich.server.worker import Outcome
from inference_enrich.server.request_parsing import format_time_value
from inference_enrich.server.rerank_api import Rerankers
from inference_enrich.server.security import ApiKey, ApiKeyCheck
from inference_enrich.server.store import EndpointStore

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    """``enrich serve``'s options (see ``server/cli.py`` for what each means to a user)."""

    endpoints_path: Path
    max_body_bytes: int = 10 * 1024 * 1024
    max_inputs: int = 1024
    request_timeout_s: float = 30.0
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    preload: bool = False
    api_keys: tuple[ApiKey, ...] = ()
    model_roots: tuple[str, ...] = ()
    max_queued_texts: int = 2048


class ServerContext:
    """Shared by every route (``request.app.state.context``)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.store = EndpointStore(settings.endpoints_path)
        self.pool = ModelPool(settings.batch, self.metrics.observe_batch, self.metrics.observe_remote)
        self.rerankers = Rerankers()  # rerank endpoints' models: outside the pool, which batches embeddings
        self.api_keys = ApiKeyCheck(settings.api_keys)
        self.model_roots = ModelRoots.of(settings.model_roots)
        self.admission = Admission(settings.max_queued_texts)
        self._installing: list[Endpoint] = []  # endpoints between PUT and commit

    async def infer(self, endpoint: Endpoint, texts: list[str], timeout_s: float | None) -> Outcome:
        """``texts`` through ``endpoint``'s model, batched with whatever else is in flight."""
        key = model_key(endpoint)
        try:
            self.admission.admit(key, endpoint.inference_id, len(texts))
        except ApiError:
            self.metrics.observe_rejection(endpoint.inference_id)
            raise
        try:
            future = self.pool.worker_for(endpoint).submit(texts)
        except BaseException:
            self.admission.release_now(key, len(texts))
            raise
        self.admission.release_when_done(key, len(texts), future)
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except asyncio.TimeoutError:  # the job is withdrawn if the model has not taken it yet
            raise ApiError(408, "status_exception",
                           f"Request timed out after [{format_time_value(timeout_s or 0)}]") from None
        except RemoteInputError as error:  # the remote service blamed a text: the caller's to fix
            raise ApiError(400, "status_exception", str(error)) from None
        except Exception as error:
            LOG.warning("inference on %s failed: %s", endpoint.inference_id, error)
            raise ApiError(500, "status_exception",
                           f"inference on [{endpoint.inference_id}] failed: {error}") from None
        self.metrics.observe_inference(endpoint.inference_id, endpoint.task_type, len(texts), outcome.tokens)
        return outcome

    async def install(self, endpoint: Endpoint, timeout_s: float | None,
                      commit: Callable[[], Awaitable[None]]) -> None:
        """Load ``endpoint``'s model, then ``commit`` it to the store. The model is loaded
        first (as Elasticsearch deploys a model when the endpoint is created), so one that
        cannot load is refused at PUT, not at first use."""
        self._installing.append(endpoint)
        try:
            await self._load_model(endpoint, timeout_s)
            await commit()
        finally:
            self._installing.remove(endpoint)
            self.retire_unused_models()

    def retire_unused_models(self) -> None:
        in_use = [*self.store.list(), *self._installing]
        self.pool.retire_unused(in_use)
        self.rerankers.retire_unused(in_use)

    async def _load_model(self, endpoint: Endpoint, timeout_s: float | None) -> None:
        """A rerank endpoint's model is loaded as its first request loads it (``Rerankers``,
        in a thread); an embedding endpoint's by its worker in the pool."""
        if endpoint.task_type == RERANK:
            loading: Awaitable[object] = asyncio.to_thread(self.rerankers.get, endpoint)
        else:
            loading = asyncio.wrap_future(self.pool.worker_for(endpoint).load())
        try:
            await asyncio.wait_for(loading, timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(408, "status_exception",
                           f"Timed out after [{format_time_value(timeout_s or 0)}] loading the "
                           f"model of [{endpoint.inference_id}]") from None
        except Exception as error:
            raise ApiError(400, "status_exception",
                           f"Could not load the model of [{endpoint.inference_id}]: {error}") from None

    @staticmethod
    def of(request: Request) -> "ServerContext":
        return request.app.state.context
