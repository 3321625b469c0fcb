"""Dynamic batching: concurrent requests to one model share its forward passes.

Each distinct model (task type, service and service settings) has one ``ModelWorker``: a
thread that owns the loaded runtime, so torch never runs concurrently on one model and the
event loop never waits for it. Requests are queued as jobs; the thread takes the first, then
keeps taking jobs until the token budget or batch size is full or ``max_wait_s`` has passed
(a short, bounded wait that lets a wave of concurrent requests meet in one batch), cuts the
collected texts into length-sorted batches with the pipeline's ``embed_batches`` and answers
each job with exactly its own results as soon as its last text is done. A job whose caller
gave up (timed out) before it was taken is skipped.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from inference_enrich.inference import Endpoint, ModelRuntime, TokenizedText, load_runtime
from inference_enrich.inference.batching import embed_batches
from inference_enrich.inference.memory import HeapTrimmer
from inference_enrich.inference.remote.runtime import is_remote
from inference_enrich.inference.results import InferenceResult

LOG = logging.getLogger(__name__)

BatchObserver = Callable[[str, int, int, float], None]
"""Called after each forward pass with (model id, documents, padded tokens, seconds)."""


@dataclass(frozen=True)
class BatchPolicy:
    """How requests are gathered into forward passes.

    The token budget is a quarter of the batch pipeline's: a server is judged by latency
    under many clients, and passes of 2048 padded tokens answer the first callers sooner
    and, measured (bench/bench_serve.py, 32 clients, MiniLM), serve ~30% more requests/s
    than passes of 8192 on this CPU.
    """

    max_batch_tokens: int = 2048
    max_batch_size: int = 64
    max_wait_s: float = 0.005

    def __post_init__(self) -> None:
        if self.max_batch_tokens < 1 or self.max_batch_size < 1 or self.max_wait_s < 0:
            raise ValueError("batch limits must be positive and the wait >= 0")


@dataclass(frozen=True)
class Outcome:
    """One request's answer: a result per input text, in order, and its token count."""

    results: list[InferenceResult]
    tokens: int


class _Job:
    """One request's texts (None: only load the model) and where its answer goes."""

    __slots__ = ("texts", "future", "tokenized", "results", "remaining")

    def __init__(self, texts: list[str] | None) -> None:
        self.texts = texts
        self.future: Future = Future()
        self.tokenized: list[TokenizedText] = []
        self.results: list[InferenceResult | None] = []
        self.remaining = 0


_STOP = object()


def model_key(endpoint: Endpoint) -> str:
    """What identifies a loaded model: endpoints equal in this share one worker. Task
    settings are not part of it; they are applied to each request's results. A remote
    endpoint is its own (its task settings go into its requests; the remote client, and
    so its rate limit, is still shared by endpoints with equal settings)."""
    if is_remote(endpoint):
        return f"remote:{endpoint.fingerprint()}"
    return json.dumps([endpoint.task_type, endpoint.service, dict(endpoint.service_settings)],
                      sort_keys=True)


class ModelWorker:
    """The thread that owns one loaded model and batches the requests sent to it."""

    def __init__(self, endpoint: Endpoint, policy: BatchPolicy, observe: BatchObserver) -> None:
        self._endpoint = replace(endpoint, task_settings={})  # pruning happens per request
        self._policy = policy
        self._observe = observe
        self._runtime: ModelRuntime | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._heap = HeapTrimmer()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"model-{endpoint.model_id}")
        self._thread.start()

    @property
    def model_id(self) -> str:
        return self._endpoint.model_id

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    def submit(self, texts: Sequence[str]) -> Future:
        """Queue ``texts``; the future gets an ``Outcome`` (or the model's exception). Cancel
        it to withdraw the request if it has not been taken yet."""
        job = _Job(list(texts))
        self._queue.put(job)
        return job.future

    def load(self) -> Future:
        """Load the model now (a future that is done when it is loaded, or failed to)."""
        job = _Job(None)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Stop after the jobs already queued are answered."""
        self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            jobs, stopping = self._collect(self._queue.get())
            if jobs:
                self._answer(jobs)

    def _collect(self, first: object) -> tuple[list[_Job], bool]:
        """The first job plus whatever arrives within the wait, up to one batch's worth."""
        jobs: list[_Job] = []
        count = longest = 0
        deadline = time.monotonic() + self._policy.max_wait_s
        item = first
        while True:
            if item is _STOP:
                return jobs, True
            job: _Job = item  # type: ignore[assignment]
            if job.future.set_running_or_notify_cancel() and self._prepare(job):
                jobs.append(job)
                count += len(job.tokenized)
                longest = max([longest, *(len(t.ids) for t in job.tokenized)])
            if count >= self._policy.max_batch_size or count * longest >= self._policy.max_batch_tokens:
                return jobs, False
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return jobs, False

    def _prepare(self, job: _Job) -> bool:
        """Load the model if needed and tokenise the job; False when the job is already answered."""
        try:
            if self._runtime is None:
                started = time.perf_counter()
                self._runtime = load_runtime(self._endpoint)
                LOG.info("loaded %s (%s) in %.1f s", self.model_id, self._endpoint.task_type,
                         time.perf_counter() - started)
            if job.texts is None:
                job.future.set_result(None)
                return False
            job.tokenized = self._runtime.tokenize(job.texts)
        except Exception as error:  # a model that cannot load fails this request, not the server
            job.future.set_exception(error)
            return False
        job.results = [None] * len(job.tokenized)
        job.remaining = len(job.tokenized)
        return True

    def _answer(self, jobs: list[_Job]) -> None:
        """Embed every job's texts together; a text the model fails on fails its own request
        only (``embed_batches`` retries a failed pass one text at a time), and anything
        unexpected fails the open requests instead of killing this thread."""
        try:
            self._embed_jobs(jobs)
        except Exception as error:
            LOG.exception("answering %d requests failed", len(jobs))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)

    def _embed_jobs(self, jobs: list[_Job]) -> None:
        owners = [(job, index) for job in jobs for index in range(len(job.tokenized))]
        tokenized = [job.tokenized[index] for job, index in owners]
        for batch in embed_batches(self._runtime, tokenized, self._policy.max_batch_tokens,
                                   self._policy.max_batch_size):
            if batch.latency_s is not None:
                longest = max(len(tokenized[p].ids) for p in batch.positions)
                self._observe(self.model_id, len(batch.positions), len(batch.positions) * longest,
                              batch.latency_s)
            for position, result in zip(batch.positions, batch.results, strict=True):
                job, index = owners[position]
                if job.future.done():  # failed by an earlier text of the same request
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                    continue
                job.results[index] = result
                job.remaining -= 1
                if job.remaining == 0:
                    job.future.set_result(Outcome(job.results, sum(len(t.ids) for t in job.tokenized)))
            self._heap.after_batch()


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

    def worker_for(self, endpoint: Endpoint):
        key = model_key(endpoint)
        worker = self._workers.get(key)
        if worker is None:
            if is_remote(endpoint):
                from inference_enrich.server.remote_worker import RemoteWorker

                worker = RemoteWorker(endpoint, self._observe_remote)
            else:
                worker = ModelWorker(endpoint, self._policy, self._observe)
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
