"""Write enriched documents to a search index; rejected documents come out as dead letters.

Elasticsearch and OpenSearch take parallel bulk writers. The embedded index takes one writer
at a time, so its documents are first gathered under a single key (``GroupIntoBatches``):
Beam processes one key on one worker at a time, which serialises the writes. A batch is
released when full or, at the latest, ``max_buffering_duration_secs`` after its first
document, so in a streaming job a trickle of records becomes searchable within seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterator, Sequence

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from inference_enrich.indexes import IndexSettings, IndexSpec, SearchIndex, open_index
from inference_enrich.indexes.base import CHUNK_EMBEDDING, BulkOutcome, index_safe_tokens
from inference_enrich.inference.results import ChunkedEmbedding, require_shape
from inference_enrich.transforms.buffering import BufferedElement, BufferingDoFn
from inference_enrich.transforms.documents import (
    EnrichedDocument,
    document_dead_letter,
    require_enriched,
)
from inference_enrich.transforms.metrics import StepMetrics
from inference_enrich.transforms.writable import UnwritableValue, index_json

INDEX = "index"
BULK_BATCH = 500
MAX_BUFFERING_SECONDS = 5.0


def index_source(enriched: EnrichedDocument, spec: IndexSpec) -> tuple[dict[str, Any], int]:
    """The document body to index, and how many token names the dot rule renamed.

    Passthrough fields go as they are (dynamic mapping), then the text, the result and
    ``is_truncated``, which win over passthrough fields of the same name. A chunked result
    (``spec.chunked``) is the list of its chunks, the dot rule applied to each.
    """
    document, result = enriched.document, enriched.result
    require_shape(result, spec.chunked, document.id, "the index (its IndexSpec)")
    embedding: list[dict[str, Any]] | dict[str, float] | list[float]
    if isinstance(result, ChunkedEmbedding):
        chunks, renamed = [], 0
        for chunk in result.chunks:
            chunk_embedding, chunk_renamed = _safe_embedding(chunk.embedding)
            chunks.append({**chunk.to_dict(), CHUNK_EMBEDDING: chunk_embedding})
            renamed += chunk_renamed
        embedding = chunks
    else:
        embedding, renamed = _safe_embedding(result.embedding)
    source = {k: v for k, v in document.record.items() if k != spec.text_field}
    source.update({spec.text_field: document.text, spec.output_field: embedding,
                   "is_truncated": result.is_truncated})
    return source, renamed


def _safe_embedding(embedding: dict[str, float] | list[float]) -> tuple[dict[str, float] | list[float], int]:
    """A sparse embedding with the dot rule applied (and how many tokens it renamed); a
    dense one as it is."""
    return index_safe_tokens(embedding) if isinstance(embedding, dict) else (embedding, 0)


def write_by_id(index: SearchIndex, documents: Sequence[tuple[str, dict[str, Any]]]) -> list[BulkOutcome]:
    """Write ``(id, source)`` pairs; their outcomes in the same order, matched by id.

    Indexes answer in their own order (retried items come last), so every outcome is placed
    by the id it names. An id repeated in ``documents`` goes in a later bulk call than its
    previous occurrence: the last one wins, as sequential writes would, and each occurrence
    gets its own outcome. A document without an outcome, or an outcome for a document not
    sent, raises, so the runner retries the bundle instead of counting a guess.
    """
    outcomes: list[BulkOutcome | None] = [None] * len(documents)
    for positions in _rounds_of_unique_ids(documents):
        sent = {documents[p][0]: p for p in positions}
        for outcome in index.bulk([documents[p] for p in positions]):
            position = sent.pop(outcome.doc_id, None)
            if position is None:
                raise RuntimeError(f"the index answered for document '{outcome.doc_id}', which was "
                                   "not sent or was answered already")
            outcomes[position] = outcome
        if sent:
            raise RuntimeError(f"the index gave no outcome for {len(sent)} of {len(positions)} "
                               f"documents (e.g. '{next(iter(sent))}')")
    return [outcome for outcome in outcomes if outcome is not None]  # every one: checked above


def _rounds_of_unique_ids(documents: Sequence[tuple[str, Any]]) -> list[list[int]]:
    """Positions of ``documents`` in rounds that hold each id at most once: the n-th
    occurrence of an id is in round n, so writing the rounds in order keeps the last write last."""
    rounds: list[list[int]] = []
    occurrences: Counter[str] = Counter()
    for position, (doc_id, _) in enumerate(documents):
        if occurrences[doc_id] == len(rounds):
            rounds.append([])
        rounds[occurrences[doc_id]].append(position)
        occurrences[doc_id] += 1
    return rounds


class WriteToIndexDoFn(BufferingDoFn):
    """Bulk-writes enriched documents; its output is the dead letters of rejected ones."""

    def __init__(self, settings: IndexSettings, spec: IndexSpec, batch_size: int = BULK_BATCH) -> None:
        super().__init__(batch_size)
        self._settings = settings
        self._spec = spec
        self._metrics = StepMetrics(["records_written", "index_rejections", "tokens_renamed"])
        self._index: SearchIndex | None = None

    def setup(self) -> None:
        self._index = open_index(self._settings)
        self._index.ensure_index(self._spec)

    def flush(self, buffered: list[BufferedElement]) -> Iterator[WindowedValue]:
        bodies, sendable = [], []
        for entry in buffered:
            enriched = require_enriched(entry.element, "WriteToSearchIndex")
            source, renamed = index_source(enriched, self._spec)
            try:  # one value the index cannot hold must not fail the whole bulk request
                source = index_json(source)
            except UnwritableValue as problem:
                self._metrics.inc("index_rejections")
                yield entry.output(document_dead_letter(enriched.document, INDEX, f"cannot index: {problem}"))
                continue
            self._metrics.inc("tokens_renamed", renamed)
            bodies.append((enriched.document.id, source))
            sendable.append(entry)
        assert self._index is not None, "flush runs between setup and teardown"
        outcomes = write_by_id(self._index, bodies)  # in buffer order, matched by id
        for entry, outcome in zip(sendable, outcomes):
            if outcome.error is None:
                self._metrics.inc("records_written")
                continue
            self._metrics.inc("index_rejections")
            yield entry.output(document_dead_letter(entry.element.document, INDEX, outcome.error))

    def teardown(self) -> None:
        if self._index is not None:
            self._index.close()


class OneWriterBatches(beam.PTransform):
    """Elements -> lists of them, all under one key, so that one writer at a time gets them.

    A list is released when it holds ``batch_size`` elements, when
    ``max_buffering_duration_secs`` have passed since its first element (processing time;
    0 means no limit), or when the window ends. ``clock`` as in ``GroupIntoBatches``.
    """

    def __init__(self, batch_size: int, max_buffering_duration_secs: float,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._batch_size = batch_size
        self._max_buffering_duration_secs = max_buffering_duration_secs
        self._clock = clock

    def expand(self, elements):
        return (
            elements
            | "OneKey" >> beam.Map(lambda element: ("one-writer", element))
            | "Batches" >> beam.GroupIntoBatches(self._batch_size, self._max_buffering_duration_secs, self._clock)
            | "DropKey" >> beam.Map(lambda key_batch: list(key_batch[1]))
        )


class WriteToSearchIndex(beam.PTransform):
    """Enriched documents (what ``Enrich`` emits) -> a search index; returns
    the dead letters of rejected documents.

    ``max_buffering_duration_secs``: the embedded index's time bound on a batch (see the
    module docstring)."""

    def __init__(self, settings: IndexSettings, spec: IndexSpec,
                 max_buffering_duration_secs: float = MAX_BUFFERING_SECONDS) -> None:
        super().__init__()
        self._settings = settings
        self._spec = spec
        self._max_buffering_duration_secs = max_buffering_duration_secs

    def expand(self, enriched):
        if self._settings.kind == "embedded":  # one writer: gather under one key first
            enriched = (
                enriched
                | "OneWriter" >> OneWriterBatches(BULK_BATCH, self._max_buffering_duration_secs)
                | "Unbatch" >> beam.FlatMap(lambda batch: batch)
            )
        return enriched | "BulkWrite" >> beam.ParDo(WriteToIndexDoFn(self._settings, self._spec))
