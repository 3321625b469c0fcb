"""Write enriched documents as Parquet with an explicit schema.

Columns, in order:

=================  ===================================  =====================================
column             type                                 holds
=================  ===================================  =====================================
``id``             string, not null                     the record id (id field, else a hash)
<text field>       string                               the text that was embedded
<output field>     map<string, float32> (sparse) or     the inference result
                   list<float32> (dense); chunked:
                   list<struct<start_offset: int32,     one entry per chunk, in text order
                   end_offset: int32, embedding: the
                   sparse or dense type>>
``is_truncated``   bool                                 input was cut at the model's limit
``passthrough``    string (JSON object)                 every input field but the text, as read
=================  ===================================  =====================================

Passthrough fields are kept as one JSON column because input records need not share a
schema; a fixed schema keeps every file of a run readable together with
``pyarrow.dataset.dataset(OUTPUT_DIR)``.
"""

from __future__ import annotations

import json
from typing import BinaryIO

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from inference_enrich.inference.results import SPARSE_EMBEDDING, ChunkedEmbedding, InferenceResult, require_shape
from inference_enrich.transforms.bundle_files import BundleFileWriter, RunFiles
from inference_enrich.transforms.documents import EnrichedDocument, require_enriched
from inference_enrich.transforms.publishing.write_and_publish import WriteAndPublish

RESERVED_COLUMNS = ("id", "is_truncated", "passthrough")
ROW_GROUP_ROWS = 4096


def enriched_schema(text_field: str, output_field: str, task_type: str, chunked: bool = False) -> pa.Schema:
    """The Parquet schema of enriched output (see the module docstring); ``chunked`` for an
    endpoint with ``chunking_settings``."""
    for name in (text_field, output_field):
        if name in RESERVED_COLUMNS:
            raise ValueError(f"'{name}' is a reserved output column ({', '.join(RESERVED_COLUMNS)})")
    if text_field == output_field:
        raise ValueError(f"the output field must differ from the text field ('{text_field}')")
    if task_type == SPARSE_EMBEDDING:
        result_type = pa.map_(pa.string(), pa.float32())
    else:
        result_type = pa.list_(pa.float32())
    if chunked:
        result_type = pa.list_(pa.struct([
            pa.field("start_offset", pa.int32()),
            pa.field("end_offset", pa.int32()),
            pa.field("embedding", result_type),
        ]))
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field(text_field, pa.string()),
            pa.field(output_field, result_type),
            pa.field("is_truncated", pa.bool_()),
            pa.field("passthrough", pa.string()),
        ]
    )


def _column_value(embedding: dict[str, float] | list[float]) -> list[tuple[str, float]] | list[float]:
    """An embedding as its column takes it: a sparse map as (token, weight) pairs."""
    return list(embedding.items()) if isinstance(embedding, dict) else embedding


class ParquetBundleWriter(BundleFileWriter):
    """One Parquet file per bundle, written in row groups of ``ROW_GROUP_ROWS``."""

    suffix = ".parquet"

    def __init__(
        self, run_files: RunFiles, text_field: str, output_field: str, task_type: str, chunked: bool = False
    ) -> None:
        super().__init__(run_files)
        self._text_field = text_field
        self._output_field = output_field
        self._schema = enriched_schema(text_field, output_field, task_type, chunked)
        self._chunked = chunked

    def open_file(self, stream: BinaryIO) -> None:
        self._writer = pq.ParquetWriter(stream, self._schema)
        self._rows: list[EnrichedDocument] = []

    def write(self, element: object) -> None:
        enriched = require_enriched(element, "WriteEnrichedParquet")
        require_shape(enriched.result, self._chunked, enriched.document.id, "the output")
        self._rows.append(enriched)
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._write_row_group()

    def close_file(self) -> None:
        self._write_row_group()
        self._writer.close()

    def _write_row_group(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        skip = {self._text_field}
        columns = {
            "id": [row.document.id for row in rows],
            self._text_field: [row.document.text for row in rows],
            self._output_field: [self._output_value(row.result) for row in rows],
            "is_truncated": [row.result.is_truncated for row in rows],
            "passthrough": [
                json.dumps(
                    {k: v for k, v in row.document.record.items() if k not in skip},
                    ensure_ascii=False,
                    default=str,
                )
                for row in rows
            ],
        }
        self._writer.write_table(pa.Table.from_pydict(columns, schema=self._schema))

    def _output_value(self, result: InferenceResult):
        """``result`` as its output column takes it (a sparse map as (token, weight) pairs)."""
        if not isinstance(result, ChunkedEmbedding):  # require_shape checked it against the output
            return _column_value(result.embedding)
        return [
            {
                "start_offset": piece.start_offset,
                "end_offset": piece.end_offset,
                "embedding": _column_value(piece.embedding),
            }
            for piece in result.chunks
        ]


class WriteEnrichedParquet(beam.PTransform):
    """Enriched documents (what ``Enrich`` emits) -> ``part-*.parquet``;
    returns the names of the files written by committed bundles (see ``bundle_files``)."""

    def __init__(
        self, output: str | RunFiles, text_field: str, output_field: str, task_type: str, *,
        chunked: bool = False, announce: bool = False,
    ) -> None:
        """``output``: a directory, published by the pipeline's own last steps (``publishing``;
        works on every runner), or the ``RunFiles`` of an ``enrich run`` (staged, published
        by the run). ``chunked``: the records come from an endpoint with
        ``chunking_settings`` (one embedding per chunk). ``announce``: print a line once the
        directory is published (``publishing.WriteAndPublish``)."""
        super().__init__()
        self._fields = (text_field, output_field, task_type, chunked)
        self._output = output
        self._announce = announce

    def _writer(self, run_files: RunFiles) -> ParquetBundleWriter:
        return ParquetBundleWriter(run_files, *self._fields)

    def expand(self, enriched):
        if isinstance(self._output, RunFiles):
            return enriched | "WriteParquetFiles" >> beam.ParDo(self._writer(self._output))
        return enriched | "WriteParquetFiles" >> WriteAndPublish(self._writer, self._output,
                                                                 announce=self._announce)
