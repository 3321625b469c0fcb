"""Which reader reads a file: by the ``--format`` name, or guessed from the path's extension
(a compression suffix is the codec, not the format)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import BinaryIO, Callable, Iterator

from inference_enrich.transforms.formats.csv_reader import read_csv
from inference_enrich.transforms.formats.json_reader import jsonl_item, read_json, read_jsonl
from inference_enrich.transforms.formats.parquet_reader import read_parquet
from inference_enrich.transforms.formats.source_item import SourceItem
from inference_enrich.transforms.formats.text_reader import read_text, text_item

COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}
FORMAT_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".text": "text",
}


def compression_of(path: str) -> str | None:
    """The codec fsspec should use for ``path``, from its extension."""
    return COMPRESSION_SUFFIXES.get(PurePosixPath(path).suffix.lower())


def format_of(path: str) -> str:
    """Guess the format from the extension (compression suffix ignored)."""
    pure = PurePosixPath(path)
    if pure.suffix.lower() in COMPRESSION_SUFFIXES:
        pure = PurePosixPath(pure.stem)
    fmt = FORMAT_SUFFIXES.get(pure.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of '{path}' from its extension; pass --format "
            f"({'|'.join(sorted(set(FORMAT_SUFFIXES.values())))})"
        )
    return fmt


READERS: dict[str, Callable[[BinaryIO, str], Iterator[SourceItem]]] = {
    "jsonl": read_jsonl,
    "json": read_json,
    "csv": read_csv,
    "parquet": read_parquet,
    "text": read_text,
}
FORMATS = tuple(READERS)
LINE_PARSERS: dict[str, Callable[[int | None, bytes, str], SourceItem]] = {
    "jsonl": jsonl_item,
    "text": text_item,
}
"""The formats whose records are single lines, so a byte range of an uncompressed file can be
read on its own (see ``line_ranges``). CSV is not one: a quoted field may hold newlines."""
