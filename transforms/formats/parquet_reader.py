"""Parquet: rows in batches, so a large file never sits in memory whole."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from inference_enrich.transforms.formats.source_item import SourceItem


def read_parquet(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """Rows in batches, so a large file never sits in memory whole; ``line`` is the row."""
    import pyarrow.parquet as pq  # here: the job config names FORMATS, and `enrich --help` loads it

    row = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=1024):
        for value in batch.to_pylist():
            row += 1
            yield SourceItem(row, value=value)
