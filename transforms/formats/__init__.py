"""Streaming readers for the input formats: one ``SourceItem`` per record, never a whole file.

Each reader takes a binary file object (already decompressed) and yields items in file order.
A record that cannot be parsed is still yielded, with its error and raw text, so the caller
can dead-letter it: nothing is skipped silently (blank lines of plain text files are
paragraph breaks, not records, and are only counted).

One module a job: ``registry`` picks the reader (``READERS``, ``format_of``); a module per
reader family (``json_reader``, ``csv_reader``, ``text_reader``, ``parquet_reader``); the
incremental JSON array parser (``json_stream``) and the CSV row-end scanner
(``csv_recovery``) they use; ``lines`` (byte-order mark) and ``source_item`` (what they yield).
The package exports what the rest of the job reads files with; the readers themselves are
reached through ``READERS``.
"""

from inference_enrich.transforms.formats.lines import first_line_without_bom
from inference_enrich.transforms.formats.registry import FORMATS, LINE_PARSERS, READERS, compression_of, format_of
from inference_enrich.transforms.formats.source_item import TOO_DEEP, SourceItem

__all__ = [
    "FORMATS",
    "LINE_PARSERS",
    "READERS",
    "TOO_DEEP",
    "SourceItem",
    "compression_of",
    "first_line_without_bom",
    "format_of",
]
