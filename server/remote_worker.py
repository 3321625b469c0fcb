"""``RemoteWorker``: what ``ModelPool`` holds for an endpoint whose model runs elsewhere.

It is a ``Worker`` as a ``ModelWorker`` is (``submit``, ``load``, ``close``), so routes do not
care where the model runs, but it has no thread or batching of its own: each request's texts go to the
remote service through the process's ``RemoteClient`` (its rate limit, requests in flight and
retries are shared by every request, see ``inference/remote/http.py``). ``load`` sends the
probe, so ``PUT`` of an endpoint with a wrong URL or key is refused at once.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Callable, Sequence

from inference_enrich.inference import Endpoint
from inference_enrich.inference.remote.http import CallStats
from inference_enrich.inference.remote.runtime import RemoteOutcome, RemoteRuntime
from inference_enrich.server.worker import Outcome, Worker

LOG = logging.getLogger(__name__)

RemoteObserver = Callable[[str, CallStats], None]
"""Called after each request's remote calls with (inference id, what they did)."""


class RemoteWorker(Worker[RemoteRuntime]):
    def __init__(self, endpoint: Endpoint, observe: RemoteObserver) -> None:
        super().__init__(endpoint)
        self._observe = observe

    def submit(self, texts: Sequence[str]) -> Future:
        """A future of the ``Outcome`` (tokens: 0, the service does not say), or of the
        first failure: a text the service refused fails its request, as a local model's does."""
        answer: Future = Future()
        try:
            remote = self._runtime_now().submit(texts)
        except Exception as error:  # e.g. a credential's environment variable is unset
            answer.set_exception(error)
            return answer

        def done(finished: Future) -> None:
            if not answer.set_running_or_notify_cancel():
                return  # the caller gave up
            try:
                outcome: RemoteOutcome = finished.result()
            except Exception as error:
                answer.set_exception(error)
                return
            try:  # metrics must never leave a caller waiting for its answer
                self._observe(self._endpoint.inference_id, outcome.stats)
            except Exception:
                LOG.exception("recording the metrics of %s failed", self._endpoint.inference_id)
            failed = next((r for r in outcome.results if isinstance(r, Exception)), None)
            if failed is not None:
                answer.set_exception(failed)
            else:
                answer.set_result(Outcome([r for r in outcome.results if not isinstance(r, Exception)], 0))

        remote.add_done_callback(done)
        return answer

    def load(self) -> Future:
        """A future that is done when the service answered the probe (or failed to)."""
        try:
            return self._runtime_now().submit_probe()
        except Exception as error:
            failed: Future = Future()
            failed.set_exception(error)
            return failed

    def close(self) -> None:
        """Release the remote client (it finishes the requests in flight first); the last
        endpoint using it ends its thread and session."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def _runtime_now(self) -> RemoteRuntime:
        if self._runtime is None:
            self._runtime = RemoteRuntime(self._endpoint)
        return self._runtime
