"""Plain text: each non-blank line is a document ``{text_field: line}``; blank lines are
paragraph breaks, not records, and are only counted."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from inference_enrich.transforms.formats.lines import without_bom
from inference_enrich.transforms.formats.source_item import SourceItem, raw_text


def text_item(position: int | None, line: bytes, text_field: str) -> SourceItem:
    """One plain-text line as an item: a document ``{text_field: line}``, or blank."""
    try:
        decoded = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        return SourceItem(position, error=f"not valid UTF-8: {error}", raw=raw_text(line))
    if decoded.strip():
        return SourceItem(position, value={text_field: decoded})
    return SourceItem(position, blank=True)


def read_text(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """Each non-blank line is a document ``{text_field: line}``."""
    for number, line in enumerate(without_bom(stream), start=1):
        yield text_item(number, line, text_field)
