"""A local model's requests while they wait: ``Job`` (one request and its future) and
``Text`` (one of its texts in the pool), and the moves of a job's future.

A job's future goes pending -> running -> done. While pending its caller can withdraw it
(cancel: it timed out); once a pass takes one of its texts it is running and cannot be
withdrawn any more. These functions make each move safe to ask for whatever state the
future is in, so the model thread never raises on a job its caller gave up on.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass

from inference_enrich.inference import TokenizedText
from inference_enrich.inference.results import InferenceResult


class Job:
    """One request's texts (None: only load the model) and where its answer goes;
    ``ready`` once its texts are tokenised (``arrived`` is then when it joined the queue)."""

    __slots__ = ("texts", "arrived", "future", "tokenized", "results", "remaining", "ready")

    def __init__(self, texts: list[str] | None) -> None:
        self.texts = texts
        self.arrived = time.monotonic()
        self.future: Future = Future()
        self.tokenized: list[TokenizedText] = []
        self.results: list[InferenceResult | None] = []
        self.remaining = 0
        self.ready = False


@dataclass(frozen=True)
class Text:
    """One pending text: input ``index`` of ``job``."""

    job: Job
    index: int

    @property
    def tokenized(self) -> TokenizedText:
        return self.job.tokenized[self.index]


def start_job(job: Job) -> bool:
    """Mark ``job`` as being computed (from then on its caller cannot withdraw it); False
    when the caller withdrew it first. Safe to ask again for the same job: a withdrawn
    future must not see ``set_running_or_notify_cancel`` twice (the second call raises).
    Withdrawn jobs are dropped without being "notified": nothing here waits on them with
    ``concurrent.futures.wait``, and the callbacks ``asyncio.wrap_future`` uses have run."""
    if job.future.running():
        return True
    if job.future.cancelled():
        return False
    return job.future.set_running_or_notify_cancel()


def settle_job(job: Job, result: object = None, error: Exception | None = None) -> None:
    """Answer a job no pass has taken yet (unless its caller withdrew it meanwhile)."""
    if job.future.set_running_or_notify_cancel():
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


def fail_job(job: Job, error: Exception) -> None:
    """Fail ``job`` with ``error`` unless it is answered or withdrawn already."""
    if not job.future.done() and start_job(job):
        job.future.set_exception(error)
