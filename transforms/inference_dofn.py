"""``InferenceDoFn``: documents in, enriched documents out, batched by a token budget.

Per bundle it buffers documents (``BufferingDoFn``), tokenises them together, cuts
length-sorted batches that fit the token budget and runs one forward pass per batch
(``inference/batching.py``); a document the tokenizer or the model fails on becomes one dead
letter. With the endpoint's ``chunking_settings``, the buffered documents are cut into
chunks and the chunks of all of them are batched together the same way
(``inference/chunked.py``); a document is emitted, with a ``ChunkedEmbedding``, once all its
chunks are done, or dead-lettered once. Each output keeps its input's window and timestamp. The model is loaded once per
worker process (``shared_runtime``), however many DoFn instances and threads the runner creates.

``EnrichDocuments`` wraps it for the job, over ``Document`` elements; the public ``Enrich``
(``enrich.py``) puts record parsing and validation in front of the same transform.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.windowed_value import WindowedValue

from inference_enrich.inference import Endpoint, ModelRuntime
from inference_enrich.inference.batching import EmbeddedBatch, embed_batches, tokenize_each
from inference_enrich.inference.chunked import embed_chunked
from inference_enrich.inference.chunking import ChunkingSettings
from inference_enrich.inference.memory import HeapTrimmer
from inference_enrich.inference.results import InferenceResult
from inference_enrich.inference.runtime import TokenizedText, WholeTextRuntime, takes_whole_texts
from inference_enrich.transforms.documents import (
    DEAD_LETTER_TAG,
    INFERENCE,
    EnrichedDocument,
    document_dead_letter,
)
from inference_enrich.transforms.buffering import BufferedElement, BufferingDoFn
from inference_enrich.transforms.failure_guard import SystemicFailureGuard
from inference_enrich.transforms.metrics import StepMetrics
from inference_enrich.transforms.shared_runtimes import RuntimeHolder, shared_runtime
from inference_enrich.transforms.writable import unwritable_part

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingConfig:
    """How documents are grouped into forward passes.

    max_batch_tokens: padded tokens per forward pass (documents x longest); bounds memory.
    max_batch_size: documents per forward pass.
    max_buffered_documents: documents held before a flush; larger buffers sort better by
        length (less padding) but hold results back longer in streaming jobs.
    """

    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    max_buffered_documents: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_size", "max_buffered_documents"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class _ProgressLog:
    """Logs throughput every ``interval`` seconds so long runs show they are alive."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._start = self._last = time.monotonic()
        self._documents = self._tokens = 0

    def add(self, documents: int, tokens: int) -> None:
        self._documents += documents
        self._tokens += tokens
        now = time.monotonic()
        if self._interval and now - self._last >= self._interval:
            self._last = now
            elapsed = now - self._start
            LOG.info(
                "enriched %d documents in this worker (%.0f docs/s, %.0f tokens/s)",
                self._documents,
                self._documents / elapsed,
                self._tokens / elapsed,
            )


class InferenceDoFn(BufferingDoFn):
    """Calls ``endpoint`` on each ``Document``; emits ``EnrichedDocument`` (main output) or a
    dead letter (``DEAD_LETTER_TAG``) for a document the tokenizer or the model fails on (or
    a remote service refuses). When every document of the first forward passes fails with one
    error, the endpoint is broken: ``SystemicInferenceError`` fails the run (``failure_guard``).

    Metrics: records_enriched, inference_errors, tokens, truncated, batches (forward passes,
    or requests to a remote service), batch_latency_ms (a forward pass, or one request);
    remote endpoints also count remote_requests, remote_retries and remote_throttled_waits
    (requests that waited for the rate limit)."""

    def __init__(
        self,
        endpoint: Endpoint,
        batching: BatchingConfig = BatchingConfig(),
        num_threads: int | None = None,
        progress_interval_s: float = 30.0,
    ) -> None:
        super().__init__(batching.max_buffered_documents)
        self._endpoint = endpoint
        self._batching = batching
        self._num_threads = num_threads
        self._progress_interval_s = progress_interval_s
        self._holder: RuntimeHolder | None = None
        self._runtime: ModelRuntime | WholeTextRuntime | None = None
        self._metrics = StepMetrics(
            ("records_enriched", "inference_errors", "tokens", "batches", "truncated", "chunks", "remote_requests",
             "remote_retries", "remote_throttled_waits", "characters"),
            distributions=("batch_latency_ms", "chunks_per_document"),
        )

    def setup(self) -> None:
        if self._num_threads:
            import torch

            torch.set_num_threads(self._num_threads)
        self._holder = shared_runtime(self._endpoint)
        self._runtime = self._holder.runtime
        self._progress = _ProgressLog(self._progress_interval_s)
        self._heap = HeapTrimmer()  # keeps RSS flat over millions of documents
        self._guard = SystemicFailureGuard()  # a broken model fails the run, not every record

    def teardown(self) -> None:
        self._holder = self._runtime = None  # the model goes once no instance holds it

    def flush(self, entries: list[BufferedElement]) -> Iterator[WindowedValue | TaggedOutput]:
        runtime = self._runtime
        assert runtime is not None, "flush runs between setup and teardown"
        if takes_whole_texts(runtime):
            yield from self._flush_remote(runtime, entries)
            return
        if self._endpoint.chunking_settings is not None:
            yield from self._flush_chunked(runtime, self._endpoint.chunking_settings, entries)
            return
        tokenized = tokenize_each(runtime, [entry.element.text for entry in entries])
        for entry, item in zip(entries, tokenized, strict=True):
            if isinstance(item, Exception):
                yield self._emit(entry, 0, item)
        batching = self._batching
        for batch in embed_batches(
            runtime, tokenized, batching.max_batch_tokens, batching.max_batch_size
        ):
            self._record_batch(batch)
            self._guard.observe(batch.results)
            lengths = [_token_count(tokenized[position]) for position in batch.positions]
            self._progress.add(len(lengths), sum(lengths))
            for position, tokens, result in zip(batch.positions, lengths, batch.results, strict=True):
                yield self._emit(entries[position], tokens, result)
        self._heap.trim()

    def _record_batch(self, batch: EmbeddedBatch) -> None:
        if batch.latency_s is not None:
            self._metrics.update("batch_latency_ms", int(batch.latency_s * 1000))
        self._metrics.inc("batches")
        self._heap.after_batch()

    def _flush_chunked(
        self, runtime: ModelRuntime, settings: ChunkingSettings, entries: list[BufferedElement]
    ) -> Iterator[WindowedValue | TaggedOutput]:
        """With ``chunking_settings``: the chunks of every buffered document are batched
        together by the token budget; each document is emitted once all its chunks are done,
        or dead-lettered once at its first failed chunk (``inference/chunked.py``)."""
        batching = self._batching
        for event in embed_chunked(
            runtime,
            [entry.element.text for entry in entries],
            settings,
            batching.max_batch_tokens,
            batching.max_batch_size,
        ):
            if isinstance(event, EmbeddedBatch):
                self._record_batch(event)
                self._guard.observe(event.results)
                continue
            if not isinstance(event.result, Exception):
                self._metrics.inc("chunks", event.chunks)
                self._metrics.update("chunks_per_document", event.chunks)
                self._progress.add(1, event.tokens)
            yield self._emit(entries[event.document], event.tokens, event.result)
        self._heap.trim()

    def _flush_remote(
        self, runtime: WholeTextRuntime, entries: list[BufferedElement]
    ) -> Iterator[WindowedValue | TaggedOutput]:
        """A remote endpoint: the texts go out by count in concurrent requests (nothing is
        tokenised here); a text the service refuses is a dead letter, and a service that
        keeps failing raises ``RemoteServiceError``, failing the bundle. A text that is not
        valid Unicode is not sent: no local tokenizer rejects it, and a service that took it
        would leave the writers a text they cannot encode."""
        sendable = []
        for entry in entries:
            problem = unwritable_part({"text": entry.element.text})
            if problem is None:
                sendable.append(entry)
            else:
                yield self._emit(entry, 0, UnicodeError(problem))
        if sendable:
            yield from self._infer_remote(runtime, sendable)

    def _infer_remote(
        self, runtime: WholeTextRuntime, entries: list[BufferedElement]
    ) -> Iterator[WindowedValue | TaggedOutput]:
        outcome = runtime.infer([entry.element.text for entry in entries])
        stats = outcome.stats
        self._metrics.inc("remote_requests", stats.requests)
        self._metrics.inc("remote_retries", stats.retries)
        self._metrics.inc("remote_throttled_waits", stats.throttled_waits)
        for latency_ms in stats.latencies_ms:
            self._metrics.update("batch_latency_ms", latency_ms)
        self._metrics.inc("batches", stats.requests)
        # Tokens only as the service reports them (this process tokenises nothing); always
        # the characters of the texts enriched, so the summary has something true to say.
        self._metrics.inc("tokens", stats.reported_tokens or 0)
        self._metrics.inc("characters", sum(len(entry.element.text) for entry, result
                                            in zip(entries, outcome.results) if not isinstance(result, Exception)))
        self._progress.add(len(entries), stats.reported_tokens or 0)
        self._guard.observe(outcome.results)
        for entry, result in zip(entries, outcome.results, strict=True):
            yield self._emit(entry, 0, result)

    def _emit(
        self, entry: BufferedElement, tokens: int, result: InferenceResult | Exception
    ) -> WindowedValue | TaggedOutput:
        document = entry.element
        if isinstance(result, Exception):
            self._metrics.inc("inference_errors")
            letter = document_dead_letter(document, INFERENCE, f"{type(result).__name__}: {result}")
            return entry.tagged_output(DEAD_LETTER_TAG, letter)
        self._metrics.inc("records_enriched")
        self._metrics.inc("tokens", tokens)
        if result.is_truncated:
            self._metrics.inc("truncated")
        return entry.output(EnrichedDocument(document, result))


def _token_count(item: TokenizedText | Exception) -> int:
    """Tokens of a text ``embed_batches`` embedded (it embeds only tokenised ones)."""
    assert isinstance(item, TokenizedText), "embed_batches embeds tokenised texts only"
    return len(item.ids)


class EnrichDocuments(beam.PTransform):
    """``Document``s -> ``EnrichedDocument``s (main output, ``enriched``) and dead letters
    (``DEAD_LETTER_TAG``). The job's inference step; users compose ``Enrich`` instead."""

    def __init__(
        self,
        endpoint: Endpoint,
        batching: BatchingConfig = BatchingConfig(),
        num_threads: int | None = None,
    ) -> None:
        super().__init__()
        self._dofn = InferenceDoFn(endpoint, batching, num_threads)

    def expand(self, documents):
        return documents | "Infer" >> beam.ParDo(self._dofn).with_outputs(
            DEAD_LETTER_TAG, main="enriched"
        )
