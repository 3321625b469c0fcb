"""``Scheduler``: a local model's queue and pool, and the choice of its next forward pass.

Jobs join the queue (before the model is loaded, or once tokenised); the model thread moves
their texts into the pool, oldest first (when idle, it first waits up to ``max_wait_s`` so
that a wave of concurrent requests meets there), and runs one pass at a time
(``next_batch``): the pool's *oldest* text together with the texts nearest it in length
among those that arrived at most ``reorder_window_s`` after it. Like lengths keep padding
low; anchoring every pass on the oldest text, and letting only near-contemporaries ride
along, bounds how long any text is overtaken by shorter newcomers (the tail latency).
Requests that arrive meanwhile join the pool between passes; beyond the pool's size they
wait in the queue, in order. A job whose caller gave up (timed out) before any of its texts
went into a pass is never computed: it stays cancellable in the pool until then.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Callable

from inference_enrich.server.batch_policy import BatchPolicy
from inference_enrich.server.pending import Job, Text, fail_job, start_job

LOG = logging.getLogger(__name__)

_STOP = object()


def next_batch(pending: list[Text], policy: BatchPolicy) -> list[Text]:
    """Take the next forward pass's texts out of ``pending`` (oldest first): the oldest
    text, then, nearest in length first, the texts that arrived within
    ``policy.reorder_window_s`` of it, as many as fit the pass's padded-token budget and
    batch size."""
    oldest = pending[0]
    horizon = oldest.job.arrived + policy.reorder_window_s
    anchor = len(oldest.tokenized.ids)
    within_window = itertools.takewhile(lambda position: pending[position].job.arrived <= horizon,
                                        range(1, len(pending)))  # pending is in arrival order
    nearest_first = sorted(within_window,
                           key=lambda position: abs(len(pending[position].tokenized.ids) - anchor))
    chosen, longest = {0}, anchor
    for position in nearest_first:
        if len(chosen) >= policy.max_batch_size or (len(chosen) + 1) * longest > policy.max_batch_tokens:
            break  # full: no text, however short, fits any more
        length = len(pending[position].tokenized.ids)
        if (len(chosen) + 1) * max(longest, length) <= policy.max_batch_tokens:
            chosen.add(position)
            longest = max(longest, length)
    taken = [text for position, text in enumerate(pending) if position in chosen]
    pending[:] = [text for position, text in enumerate(pending) if position not in chosen]
    return taken


class Scheduler:
    """The queue and the pool of one model thread. ``admit`` turns a queued job into its
    pooled texts (none when it is answered there or sent on to be tokenised); jobs sent to
    the tokenizer are counted (``sent_to_tokenizer``) until they come back to the queue,
    so that stopping waits for them and an idle pool waits a little for a wave of them."""

    def __init__(self, policy: BatchPolicy, admit: Callable[[Job], list[Text]]) -> None:
        self._policy = policy
        self._admit = admit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pool: list[Text] = []
        self._stopping = False
        self._tokenizing = 0  # jobs in the tokenizer pool, which will come back to the queue
        self._tokenizing_lock = threading.Lock()

    def put(self, job: Job) -> None:
        self._queue.put(job)

    def stop(self) -> None:
        """Stop after the jobs already queued (and those being tokenised) are answered."""
        self._queue.put(_STOP)

    def sent_to_tokenizer(self) -> None:
        with self._tokenizing_lock:
            self._tokenizing += 1

    @property
    def running(self) -> bool:
        """False once stopped with nothing pooled or being tokenised."""
        return bool(self._pool) or not self._stopping or self._tokenizing > 0

    def fill(self) -> None:
        """Take queued jobs into the pool; after the stop signal the queue still brings
        back the jobs being tokenised."""
        self._stopping = self._take_queued() or self._stopping

    def next_pass(self) -> list[Text]:
        """The texts of the next forward pass, their jobs marked as being computed; none
        when nothing pooled is still wanted (failed or withdrawn)."""
        self._pool[:] = [text for text in self._pool if not text.job.future.done()]
        if not self._pool:
            return []
        return [text for text in next_batch(self._pool, self._policy) if start_job(text.job)]

    def fail_pooled(self, error: Exception) -> None:
        """Fail every pooled request with ``error`` (a bug in pooling or choosing must not
        leave the model answering nothing) and empty the pool."""
        LOG.error("pooling or choosing a pass over %d texts failed", len(self._pool), exc_info=error)
        for text in self._pool:
            fail_job(text.job, error)
        self._pool.clear()

    def _take_queued(self) -> bool:
        """Move queued jobs' texts into the pool (oldest first) until the queue is empty
        or the pool is full; True once the stop signal is taken. When nothing is pooled it
        blocks for the first job, then waits up to ``max_wait_s`` for more to join it, and,
        while other jobs are still being tokenised (a wave that arrived together, or while
        the model loaded), up to the reorder window for them."""
        pending = self._pool
        tokens = sum(len(text.tokenized.ids) for text in pending)
        if pending:
            if self._policy.pool_is_full(len(pending), tokens):
                return False
            deadline = patience = 0.0
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
        else:
            item = self._queue.get()
            deadline = time.monotonic() + self._policy.max_wait_s
            patience = deadline - self._policy.max_wait_s + max(self._policy.max_wait_s,
                                                                self._policy.reorder_window_s)
        while True:
            if item is _STOP:
                return True
            if item.ready:  # back from the tokenizer
                with self._tokenizing_lock:
                    self._tokenizing -= 1
            admitted = self._admit(item)
            pending.extend(admitted)
            tokens += sum(len(text.tokenized.ids) for text in admitted)
            if self._policy.pool_is_full(len(pending), tokens):
                return False
            now = time.monotonic()
            remaining = deadline - now if deadline > now or not self._tokenizing else patience - now
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
