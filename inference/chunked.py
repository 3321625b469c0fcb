"""Chunked inference: many documents cut into chunks, the chunks embedded together, the
results put back together per document.

An endpoint with ``chunking_settings`` embeds each text chunk by chunk (Elasticsearch's
``semantic_text``). The chunks of *all* the documents at hand are planned first
(``plan_chunks``), so the caller tokenises and batches them as one pool of texts by the token
budget: a long document never becomes a batch of its own, and short chunks of many
documents share forward passes. ``ChunkAssembler`` then takes each chunk's result as its
batch ends and hands back a document once all of its chunks are in, or once the first of
them has failed (that document's one failure; its other chunks are ignored).
``embed_chunked`` runs the three steps over the batching of ``batching.py``.

Beam-free: the ``InferenceDoFn`` and ``infer_chunked_texts`` (``enrich infer``, the model
handler) share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

from inference_enrich.inference.batching import EmbeddedBatch, embed_batches, tokenize_each
from inference_enrich.inference.chunking import Chunk, ChunkingSettings, chunk
from inference_enrich.inference.errors import TextInferenceError
from inference_enrich.inference.results import (
    ChunkedEmbedding,
    EmbeddedChunk,
    InferenceResult,
    SparseEmbedding,
    TextEmbedding,
)
from inference_enrich.inference.runtime import ModelRuntime, TokenizedText


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of a list of documents, flattened in document then text order.

    Chunk ``k`` is ``texts[k]``, the span ``spans[k]`` of document ``owners[k]``.
    ``failures`` maps a document that could not be chunked to its error (it has no chunks).
    """

    texts: list[str]
    spans: list[Chunk]
    owners: list[int]
    chunk_counts: list[int]  # per document
    failures: dict[int, Exception]


def plan_chunks(texts: Sequence[str], settings: ChunkingSettings) -> ChunkPlan:
    """Cut every text of ``texts`` into chunks as ``settings`` say."""
    plan = ChunkPlan([], [], [], [], {})
    for document, text in enumerate(texts):
        try:
            spans = chunk(text, settings)
            if not spans:  # the chunkers always cover the text; never lose a document if not
                raise ValueError("the chunker returned no chunks")
        except Exception as error:  # a text the segmenter rejects costs that document only
            plan.failures[document] = error
            spans = []
        plan.chunk_counts.append(len(spans))
        for span in spans:
            plan.texts.append(text[span.start_offset : span.end_offset])
            plan.spans.append(span)
            plan.owners.append(document)
    return plan


class ChunkInferenceError(Exception):
    """A chunk of a document failed: the document's one failure, naming the chunk."""

    def __init__(self, span: Chunk, error: Exception) -> None:
        super().__init__(f"chunk [{span.start_offset}:{span.end_offset}]: {type(error).__name__}: {error}")
        self.span = span


class ChunkAssembler:
    """Collects chunk results of one ``ChunkPlan`` and releases each document exactly once:
    as a ``ChunkedEmbedding`` when its last chunk is in, or as a ``ChunkInferenceError`` at
    its first failed chunk."""

    def __init__(self, plan: ChunkPlan) -> None:
        self._plan = plan
        self._results: list[SparseEmbedding | TextEmbedding | None] = [None] * len(plan.texts)
        self._missing = list(plan.chunk_counts)
        self._first_chunk = [0] * len(plan.chunk_counts)
        for document in range(1, len(plan.chunk_counts)):
            self._first_chunk[document] = self._first_chunk[document - 1] + plan.chunk_counts[document - 1]
        self._released: set[int] = set(plan.failures)

    def released(self, document: int) -> bool:
        """Whether ``document`` was already handed back (done or failed)."""
        return document in self._released

    def add(
        self, chunk_index: int, result: InferenceResult | Exception
    ) -> tuple[int, ChunkedEmbedding | Exception] | None:
        """Record chunk ``chunk_index``'s result; ``(document, outcome)`` when that completes
        (or fails) its document, else None."""
        document = self._plan.owners[chunk_index]
        if document in self._released:
            return None
        if isinstance(result, Exception):
            self._released.add(document)
            error = ChunkInferenceError(self._plan.spans[chunk_index], result)
            error.__cause__ = result
            return document, error
        if isinstance(result, ChunkedEmbedding):  # a runtime embeds each chunk whole
            raise TypeError(f"chunk {chunk_index} came back chunked")
        self._results[chunk_index] = result
        self._missing[document] -= 1
        if self._missing[document]:
            return None
        self._released.add(document)
        return document, self._assemble(document)

    def _assemble(self, document: int) -> ChunkedEmbedding:
        first = self._first_chunk[document]
        indices = range(first, first + self._plan.chunk_counts[document])
        results = [result for result in (self._results[i] for i in indices) if result is not None]
        assert len(results) == len(indices), "a document is assembled once all its chunks are in"
        for i in indices:
            self._results[i] = None  # released: hold no more than the documents still open
        chunks = tuple(
            EmbeddedChunk(span.start_offset, span.end_offset, result.embedding)
            for span, result in zip((self._plan.spans[i] for i in indices), results, strict=True)
        )
        return ChunkedEmbedding(chunks, any(result.is_truncated for result in results))


class ChunkedOutcome(NamedTuple):
    """What became of document ``document``: its ``ChunkedEmbedding`` or its one error.

    tokens: the tokens of its chunks that reached the model (special tokens included)."""

    document: int
    result: ChunkedEmbedding | Exception
    chunks: int
    tokens: int


def embed_chunked(
    runtime: ModelRuntime,
    texts: Sequence[str],
    settings: ChunkingSettings,
    max_batch_tokens: int,
    max_batch_size: int,
) -> Iterator[ChunkedOutcome | EmbeddedBatch]:
    """Chunk ``texts`` and embed all their chunks together, in length-sorted batches by the
    token budget. Yields every document's ``ChunkedOutcome`` exactly once, as soon as it is
    known, and each ``EmbeddedBatch`` (positions are chunk indices) as its forward pass ends,
    before the documents that batch completed."""
    plan = plan_chunks(texts, settings)
    assembler = ChunkAssembler(plan)
    tokenized = tokenize_each(runtime, plan.texts)
    tokens = [0] * len(texts)
    for owner, item in zip(plan.owners, tokenized, strict=True):
        tokens[owner] += len(item.ids) if isinstance(item, TokenizedText) else 0

    def outcome(document: int, result: ChunkedEmbedding | Exception) -> ChunkedOutcome:
        return ChunkedOutcome(document, result, plan.chunk_counts[document], tokens[document])

    for document, error in plan.failures.items():
        yield outcome(document, error)
    for index, item in enumerate(tokenized):
        if isinstance(item, Exception) and (released := assembler.add(index, item)):
            yield outcome(*released)
    # Chunks of documents already failed are not embedded (embed_batches skips non-texts).
    runnable = [None if assembler.released(owner) else item for owner, item in zip(plan.owners, tokenized)]
    for batch in embed_batches(runtime, runnable, max_batch_tokens, max_batch_size):
        yield batch
        for index, result in zip(batch.positions, batch.results, strict=True):
            if released := assembler.add(index, result):
                yield outcome(*released)


def infer_chunked_texts(
    runtime: ModelRuntime,
    texts: Sequence[str],
    settings: ChunkingSettings,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[ChunkedEmbedding]:
    """``infer_texts`` for a chunking endpoint: one ``ChunkedEmbedding`` per text, in order.

    Raises ``TextInferenceError`` naming the first text that failed (all others are still
    computed first, so the error is the same whatever the batching)."""
    results: list[ChunkedEmbedding | Exception | None] = [None] * len(texts)
    for event in embed_chunked(runtime, texts, settings, max_batch_tokens, max_batch_size):
        if isinstance(event, ChunkedOutcome):
            results[event.document] = event.result
    embedded: list[ChunkedEmbedding] = []
    for position, result in enumerate(results):
        if isinstance(result, Exception):
            raise TextInferenceError(position, len(texts), result) from result
        assert result is not None, "embed_chunked yields every document's outcome"
        embedded.append(result)
    return embedded
