"""``ModelPool``: which worker answers an endpoint, and their lifetimes.

Each distinct local model has one ``ModelWorker`` (its thread batches every request sent to
it, see ``model_worker.py``); each remote endpoint has a ``RemoteWorker``. All local workers
share one small tokenizer pool. A worker no endpoint uses any more (after ``_update`` or
DELETE) is closed: a model thread ends after answering what it holds, a remote worker
releases its HTTP client (its event-loop thread and session end with the last user).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from inference_enrich.inference import Endpoint
from inference_enrich.server.batch_policy import BatchObserver, BatchPolicy
from inference_enrich.server.model_worker import ModelWorker
from inference_enrich.server.tokenizing import tokenizer_pool


def model_key(endpoint: Endpoint) -> str:
    """What identifies a loaded model: endpoints equal in this share one worker. Task
    settings are not part of it where they are applied to each request's results. An
    endpoint whose task settings go into its service's requests is its own (a remote
    client, and so its rate limit, is still shared by endpoints with equal settings)."""
    if endpoint.service_info.task_settings_in_requests:
        return f"remote:{endpoint.fingerprint()}"
    return json.dumps([endpoint.task_type, endpoint.service, dict(endpoint.service_settings)],
                      sort_keys=True)


class ModelPool:
    """One ``ModelWorker`` per distinct model, shared by every endpoint that uses it (a
    ``RemoteWorker`` per remote endpoint).

    Used from the event loop only (no locking); workers no endpoint uses any more are closed
    after answering what they hold.
    """

    def __init__(self, policy: BatchPolicy, observe: BatchObserver,
                 observe_remote: Callable[[str, Any], None] = lambda inference_id, stats: None) -> None:
        self._policy = policy
        self._observe = observe
        self._observe_remote = observe_remote
        self._workers: dict[str, Any] = {}
        self._tokenizers = tokenizer_pool()

    def worker_for(self, endpoint: Endpoint):
        key = model_key(endpoint)
        worker = self._workers.get(key)
        if worker is None:
            if endpoint.service_info.tokenizes_locally:  # batched by tokens on a model thread
                worker = ModelWorker(endpoint, self._policy, self._observe, self._tokenizers)
            else:  # whole texts sent to the service
                from inference_enrich.server.remote_worker import RemoteWorker

                worker = RemoteWorker(endpoint, self._observe_remote)
            self._workers[key] = worker
        return worker

    def retire_unused(self, endpoints: Sequence[Endpoint]) -> None:
        used = {model_key(endpoint) for endpoint in endpoints}
        for key in [key for key in self._workers if key not in used]:
            self._workers.pop(key).close()

    def loaded_models(self) -> list[str]:
        return sorted({worker.model_id for worker in self._workers.values() if worker.loaded})

    def close(self, timeout: float) -> None:
        """Stop every worker after its queued jobs (blocking: call it off the event loop)."""
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()
        for worker in workers:
            worker.join(timeout)
        self._tokenizers.shutdown(wait=False)
