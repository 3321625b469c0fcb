"""Dynamic batching: concurrent requests to one model share its forward passes.

Each distinct model (task type, service and service settings) has one ``ModelWorker``: a
thread that owns the loaded runtime, so torch never runs concurrently on one model and the
event loop never waits for it. Requests are queued as jobs; the thread moves their texts
into a pool, oldest first (when idle, it first waits up to ``max_wait_s`` so that a wave
of concurrent requests meets there), and runs one forward pass at a time (``next_batch``):
the pool's *oldest* text together with the texts nearest it in length among those that
arrived at most ``reorder_window_s`` after it. Like lengths keep padding low; anchoring
every pass on the oldest text, and letting only near-contemporaries ride along, bounds how
long any text is overtaken by shorter newcomers (the tail latency). Requests that arrive
meanwhile join the pool between passes; beyond the pool's size they wait in the queue, in
order. Each job is answered with exactly its own results as soon as its last text is done.
A job whose caller gave up (timed out) before any of its texts went into a pass is never
computed: it stays cancellable in the pool until then.

The model thread never tokenises: a job goes to the shared tokenizer pool first (texts cut
to what the model sees, ``server/tokenizing.py``) and joins the queue once tokenised, so a
huge text costs its own request time, not everyone's. Before the model is loaded, the model
thread loads it and then hands the jobs that arrived meanwhile to the pool.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from inference_enrich.inference import Endpoint, ModelRuntime, TokenizedText, load_runtime
from inference_enrich.inference.batching import embed_batches
from inference_enrich.inference.memory import HeapTrimmer
from inference_enrich.inference.runtime import takes_whole_texts
from inference_enrich.inference.results import InferenceResult
from inference_enrich.server.tokenizing import tokenize_cut, tokenizer_pool

LOG = logging.getLogger(__name__)

BatchObserver = Callable[[str, int, int, float], None]
"""Called after each forward pass with (model id, documents, padded tokens, seconds)."""


@dataclass(frozen=True)
class BatchPolicy:
    """How requests are gathered into forward passes.

    Measured (bench/RESULTS.md, "Pooling by length": 32 clients, MiniLM and SPLADE-tiny,
    this 2-core CPU): with pooling, passes of 1024 padded tokens served more requests/s
    than 2048 (and 2048 had beaten 8192 before pooling); 768 was within the noise of 1024.
    A reorder window of 250 ms gave both more requests/s and a lower p99 than 500 ms: a
    wider window sorts more by length but lets more newcomers overtake, which is what the
    tail is made of. The pool holds ``pool_batches`` passes' worth of texts and tokens:
    enough choice (32 waiting requests fit), and choosing stays cheap; requests beyond it
    wait in the queue, in order.
    """

    max_batch_tokens: int = 1024
    max_batch_size: int = 64
    max_wait_s: float = 0.005
    reorder_window_s: float = 0.25
    pool_batches: int = 8

    def __post_init__(self) -> None:
        if min(self.max_batch_tokens, self.max_batch_size, self.pool_batches) < 1:
            raise ValueError("batch limits must be positive")
        if self.max_wait_s < 0 or self.reorder_window_s < 0:
            raise ValueError("the batch wait and the reorder window must be >= 0")

    def pool_is_full(self, texts: int, tokens: int) -> bool:
        return texts >= self.max_batch_size * self.pool_batches or tokens >= self.max_batch_tokens * self.pool_batches


@dataclass(frozen=True)
class Outcome:
    """One request's answer: a result per input text, in order, and its token count."""

    results: list[InferenceResult]
    tokens: int


class _Job:
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
class _Text:
    """One pending text: input ``index`` of ``job``."""

    job: _Job
    index: int

    @property
    def tokenized(self) -> TokenizedText:
        return self.job.tokenized[self.index]


def next_batch(pending: list[_Text], policy: BatchPolicy) -> list[_Text]:
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


def _start(job: _Job) -> bool:
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


def _settle(job: _Job, result: object = None, error: Exception | None = None) -> None:
    """Answer a job no pass has taken yet (unless its caller withdrew it meanwhile)."""
    if job.future.set_running_or_notify_cancel():
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


def _fail(job: _Job, error: Exception) -> None:
    """Fail ``job`` with ``error`` unless it is answered or withdrawn already."""
    if not job.future.done() and _start(job):
        job.future.set_exception(error)


_STOP = object()

_SHARED_TOKENIZERS: list[Executor] = []


def _own_tokenizers() -> Executor:
    """The process's tokenizer pool, for workers built without a server's (tests, tools)."""
    if not _SHARED_TOKENIZERS:
        _SHARED_TOKENIZERS.append(tokenizer_pool())
    return _SHARED_TOKENIZERS[0]


class ModelWorker:
    """The thread that owns one loaded model and batches the requests sent to it."""

    def __init__(self, endpoint: Endpoint, policy: BatchPolicy, observe: BatchObserver,
                 tokenizers: Executor | None = None) -> None:
        self._endpoint = replace(endpoint, task_settings={})  # pruning happens per request
        self._policy = policy
        self._observe = observe
        self._tokenizers = tokenizers or _own_tokenizers()
        self._runtime: ModelRuntime | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._tokenizing = 0  # jobs in the tokenizer pool, which will come back to the queue
        self._tokenizing_lock = threading.Lock()
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
        it to withdraw the request while none of its texts has gone into a pass."""
        job = _Job(list(texts))
        if self._runtime is None:
            self._queue.put(job)  # the model thread loads the model, then sends it to tokenise
        else:
            self._send_to_tokenizer(job)
        return job.future

    def _loaded(self) -> ModelRuntime:
        """The model: ``_admit`` loads it before it sends a text to be tokenised."""
        assert self._runtime is not None, "the model is loaded before its first text"
        return self._runtime

    def _send_to_tokenizer(self, job: _Job) -> None:
        with self._tokenizing_lock:
            self._tokenizing += 1
        self._tokenizers.submit(self._tokenize, job)

    def _tokenize(self, job: _Job) -> None:
        """On a tokenizer thread: tokenise the job's (cut) texts, then queue it for the model
        thread, which always gets it back (withdrawn or failed ones too, to count them)."""
        try:
            if job.texts and not job.future.cancelled():
                job.tokenized = tokenize_cut(self._loaded(), job.texts)
                job.results = [None] * len(job.tokenized)
                job.remaining = len(job.tokenized)
        except Exception as error:  # a text the tokenizer refuses fails its own request
            _settle(job, error=error)
        finally:
            job.ready = True
            job.arrived = time.monotonic()
            self._queue.put(job)

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
        pending: list[_Text] = []
        stopping = False
        while pending or not stopping or self._tokenizing:
            try:
                # After the stop signal the queue still brings back the jobs being tokenised.
                stopping = self._take_queued(pending) or stopping
                self._pass_once(pending)
            except Exception as error:  # a bug here must not leave the model answering nothing
                LOG.exception("pooling or choosing a pass over %d texts failed", len(pending))
                for text in pending:
                    _fail(text.job, error)
                pending.clear()

    def _pass_once(self, pending: list[_Text]) -> None:
        """Run the next forward pass over the pool, if anything in it is still wanted."""
        pending[:] = [text for text in pending if not text.job.future.done()]  # failed, withdrawn
        if pending:
            texts = [text for text in next_batch(pending, self._policy) if _start(text.job)]
            if texts:
                self._answer(texts)

    def _take_queued(self, pending: list[_Text]) -> bool:
        """Move queued jobs' texts into ``pending`` (oldest first) until the queue is empty
        or the pool is full; True once the stop signal is taken. When nothing is pending it
        blocks for the first job, then waits up to ``max_wait_s`` for more to join it, and,
        while other jobs are still being tokenised (a wave that arrived together, or while
        the model loaded), up to the reorder window for them."""
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
            admitted = self._admit(item)  # type: ignore[arg-type]
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

    def _admit(self, job: _Job) -> list[_Text]:
        """The job's texts, tokenised (the model is loaded first if need be); none when the
        job was withdrawn or is answered here already (a load request, a failure, no texts).
        The job itself stays pending, so still cancellable, until a pass takes it. A job not
        tokenised yet goes to the tokenizer pool and comes back later."""
        if job.ready:
            with self._tokenizing_lock:
                self._tokenizing -= 1
        if job.future.done():  # withdrawn, or failed in the tokenizer
            return []
        try:
            if self._runtime is None:
                started = time.perf_counter()
                runtime = load_runtime(self._endpoint)
                if takes_whole_texts(runtime):  # ModelPool gives a remote endpoint a RemoteWorker
                    raise TypeError(f"{self.model_id} takes whole texts: it needs a RemoteWorker")
                self._runtime = runtime
                LOG.info("loaded %s (%s) in %.1f s", self.model_id, self._endpoint.task_type,
                         time.perf_counter() - started)
            if job.texts is None:
                _settle(job, None)
                return []
            if not job.texts:
                _settle(job, Outcome([], 0))
                return []
        except Exception as error:  # a model that cannot load fails this request, not the server
            _settle(job, error=error)
            return []
        if not job.ready:
            self._send_to_tokenizer(job)
            return []
        return [_Text(job, index) for index in range(len(job.tokenized))]

    def _answer(self, texts: list[_Text]) -> None:
        """Embed ``texts`` (one pass); a text the model fails on fails its own request only
        (``embed_batches`` retries a failed pass one text at a time), and anything
        unexpected fails these texts' requests instead of killing this thread."""
        try:
            self._embed(texts)
        except Exception as error:
            LOG.exception("answering %d texts failed", len(texts))
            for text in texts:
                _fail(text.job, error)

    def _embed(self, texts: list[_Text]) -> None:
        tokenized = [text.tokenized for text in texts]
        # next_batch chose texts that fit one pass by the same budget and size, so this
        # plans exactly one pass; embed_batches adds its one-text-at-a-time fallback.
        for batch in embed_batches(self._loaded(), tokenized, self._policy.max_batch_tokens,
                                   self._policy.max_batch_size):
            if batch.latency_s is not None:
                longest = max(len(tokenized[p].ids) for p in batch.positions)
                self._observe(self.model_id, len(batch.positions), len(batch.positions) * longest,
                              batch.latency_s)
            for position, result in zip(batch.positions, batch.results, strict=True):
                job, index = texts[position].job, texts[position].index
                if job.future.done():  # failed by an earlier text of the same request
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                    continue
                job.results[index] = result
                job.remaining -= 1
                if job.remaining == 0:
                    done = [result for result in job.results if result is not None]  # all: none remain
                    job.future.set_result(Outcome(done, sum(len(t.ids) for t in job.tokenized)))
        self._heap.after_batch()
