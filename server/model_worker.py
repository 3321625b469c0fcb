"""``ModelWorker``: the thread that owns one loaded local model and runs its forward passes.

Each distinct model (task type, service and service settings) has one ``ModelWorker``, so
torch never runs concurrently on one model and the event loop never waits for it. Concurrent
requests to the model share its passes: which texts go into each pass is the
``Scheduler``'s choice (``server/scheduler.py``); each job is answered with exactly its own
results as soon as its last text is done.

The model thread never tokenises: a job goes to the shared tokenizer pool first (texts cut
to what the model sees, ``server/tokenizing.py``) and joins the queue once tokenised, so a
huge text costs its own request time, not everyone's. Before the model is loaded, the model
thread loads it and then hands the jobs that arrived meanwhile to the pool.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from typing import Sequence

from inference_enrich.inference import Endpoint, ModelRuntime, load_runtime
from inference_enrich.inference.batching import embed_batches
from inference_enrich.inference.memory import HeapTrimmer
from inference_enrich.inference.runtime import takes_whole_texts
from inference_enrich.server.batch_policy import BatchObserver, BatchPolicy
from inference_enrich.server.pending import Job, Text, fail_job, settle_job
from inference_enrich.server.scheduler import Scheduler
from inference_enrich.server.tokenizing import TokenizerPool, cut_limit, shared_tokenizer_pool, tokenize_cut
from inference_enrich.server.worker import Outcome, Worker

LOG = logging.getLogger(__name__)


class ModelWorker(Worker[ModelRuntime]):
    """The thread that owns one loaded model and batches the requests sent to it."""

    def __init__(self, endpoint: Endpoint, policy: BatchPolicy, observe: BatchObserver,
                 tokenizers: TokenizerPool | None = None) -> None:
        super().__init__(replace(endpoint, task_settings={}))  # pruning happens per request
        self._policy = policy
        self._observe = observe
        self._tokenizers = tokenizers or shared_tokenizer_pool()
        self._scheduler = Scheduler(policy, self._admit)
        self._heap = HeapTrimmer()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"model-{endpoint.model_id}")
        self._thread.start()

    def submit(self, texts: Sequence[str]) -> Future:
        """Queue ``texts``; the future gets an ``Outcome`` (or the model's exception). Cancel
        it to withdraw the request while none of its texts has gone into a pass."""
        job = Job(list(texts))
        if self._runtime is None:
            self._scheduler.put(job)  # the model thread loads the model, then sends it to tokenise
        else:
            self._send_to_tokenizer(job)
        return job.future

    def _loaded(self) -> ModelRuntime:
        """The model: ``_admit`` loads it before it sends a text to be tokenised."""
        assert self._runtime is not None, "the model is loaded before its first text"
        return self._runtime

    def _send_to_tokenizer(self, job: Job) -> None:
        self._scheduler.sent_to_tokenizer()
        self._tokenizers.submit(job.texts or [], cut_limit(self._loaded()), lambda: self._tokenize(job))

    def _tokenize(self, job: Job) -> None:
        """On a tokenizer thread: tokenise the job's (cut) texts, then queue it for the model
        thread, which always gets it back (withdrawn or failed ones too, to count them)."""
        try:
            if job.texts and not job.future.cancelled():
                job.tokenized = tokenize_cut(self._loaded(), job.texts, job.future.cancelled)
                job.results = [None] * len(job.tokenized)
                job.remaining = len(job.tokenized)
        except Exception as error:  # a text the tokenizer refuses fails its own request
            settle_job(job, error=error)
        finally:
            job.ready = True
            job.arrived = time.monotonic()
            self._scheduler.put(job)

    def load(self) -> Future:
        """Load the model now (a future that is done when it is loaded, or failed to)."""
        job = Job(None)
        self._scheduler.put(job)
        return job.future

    def close(self) -> None:
        """Stop after the jobs already queued are answered."""
        self._scheduler.stop()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while self._scheduler.running:
            try:
                self._scheduler.fill()
                texts = self._scheduler.next_pass()
                if texts:
                    self._answer(texts)
            except Exception as error:  # a bug in the scheduler: it fails what it pools
                self._scheduler.fail_pooled(error)

    def _admit(self, job: Job) -> list[Text]:
        """The job's texts, tokenised (the model is loaded first if need be); none when the
        job was withdrawn or is answered here already (a load request, a failure, no texts).
        The job itself stays pending, so still cancellable, until a pass takes it. A job not
        tokenised yet goes to the tokenizer pool and comes back later."""
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
                settle_job(job, None)
                return []
            if not job.texts:
                settle_job(job, Outcome([], 0))
                return []
        except Exception as error:  # a model that cannot load fails this request, not the server
            settle_job(job, error=error)
            return []
        if not job.ready:
            self._send_to_tokenizer(job)
            return []
        return [Text(job, index) for index in range(len(job.tokenized))]

    def _answer(self, texts: list[Text]) -> None:
        """Embed ``texts`` (one pass); a text the model fails on fails its own request only
        (``embed_batches`` retries a failed pass one text at a time), and anything
        unexpected fails these texts' requests instead of killing this thread."""
        try:
            self._embed(texts)
        except Exception as error:
            LOG.exception("answering %d texts failed", len(texts))
            for text in texts:
                fail_job(text.job, error)

    def _embed(self, texts: list[Text]) -> None:
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
