"""Write enriched documents to a search index; rejected documents come out as dead letters.

Elasticsearch and OpenSearch take parallel bulk writers. The embedded index takes one writer
at a time, so its documents are first gathered under a single key (``GroupIntoBatches``):
Beam processes one key on one worker at a time, which serialises the writes.
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from inference_enrich.indexes import IndexSettings, IndexSpec, SearchIndex, open_index
from inference_enrich.indexes.base import index_safe_tokens
from inference_enrich.transforms.documents import (
    EnrichedDocument,
    as_enriched_document,
    document_dead_letter,
)
from inference_enrich.transforms.buffering import BufferedElement, BufferingDoFn
from inference_enrich.transforms.read_files import METRICS_NAMESPACE

INDEX = "index"
BULK_BATCH = 500


def index_source(enriched: EnrichedDocument, text_field: str, output_field: str) -> tuple[dict[str, Any], int]:
    """The document body to index, and how many token names the dot rule renamed.

    Passthrough fields go as they are (dynamic mapping), then the text, the result and
    ``is_truncated``, which win over passthrough fields of the same name.
    """
    document, result = enriched.document, enriched.result
    embedding, renamed = (
        index_safe_tokens(result.embedding) if isinstance(result.embedding, dict) else (result.embedding, 0)
    )
    source = {k: v for k, v in document.record.items() if k != text_field}
    source.update({text_field: document.text, output_field: embedding, "is_truncated": result.is_truncated})
    return source, renamed


class WriteToIndexDoFn(BufferingDoFn):
    """Bulk-writes enriched documents; its output is the dead letters of rejected ones."""

    def __init__(self, settings: IndexSettings, spec: IndexSpec, batch_size: int = BULK_BATCH) -> None:
        super().__init__(batch_size)
        self._settings = settings
        self._spec = spec
        self._indexed = Metrics.counter(METRICS_NAMESPACE, "records_written")
        self._rejected = Metrics.counter(METRICS_NAMESPACE, "index_rejections")
        self._renamed = Metrics.counter(METRICS_NAMESPACE, "tokens_renamed")
        self._index: SearchIndex | None = None

    def setup(self) -> None:
        self._index = open_index(self._settings)
        self._index.ensure_index(self._spec)

    def flush(self, buffered: list[BufferedElement]) -> Iterator[WindowedValue]:
        bodies = []
        for enriched, _, _ in buffered:
            source, renamed = index_source(enriched, self._spec.text_field, self._spec.output_field)
            self._renamed.inc(renamed)
            bodies.append((enriched.document.id, source))
        outcomes = list(self._index.bulk(bodies))
        if len(outcomes) != len(buffered):
            raise RuntimeError(f"bulk returned {len(outcomes)} outcomes for {len(buffered)} documents")
        for (enriched, window, timestamp), outcome in zip(buffered, outcomes):
            if outcome.error is None:
                self._indexed.inc()
                continue
            self._rejected.inc()
            letter = document_dead_letter(enriched.document, INDEX, outcome.error)
            yield WindowedValue(letter, timestamp, (window,))

    def teardown(self) -> None:
        if self._index is not None:
            self._index.close()


class WriteToSearchIndex(beam.PTransform):
    """Enriched documents (or the enriched dicts ``Enrich`` emits) -> a search index; returns
    the dead letters of rejected documents."""

    def __init__(self, settings: IndexSettings, spec: IndexSpec) -> None:
        super().__init__()
        self._settings = settings
        self._spec = spec

    def expand(self, enriched):
        spec = self._spec
        enriched = enriched | "AsEnrichedDocuments" >> beam.Map(
            as_enriched_document, spec.text_field, spec.output_field, spec.task_type
        )
        if self._settings.kind == "embedded":  # one writer: gather under one key first
            enriched = (
                enriched
                | "OneWriterKey" >> beam.Map(lambda e: ("embedded-index", e))
                | "OneWriterBatches" >> beam.GroupIntoBatches(BULK_BATCH)
                | "Unbatch" >> beam.FlatMap(lambda key_batch: key_batch[1])
            )
        return enriched | "BulkWrite" >> beam.ParDo(WriteToIndexDoFn(self._settings, self._spec))
