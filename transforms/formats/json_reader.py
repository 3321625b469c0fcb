"""JSON Lines (one JSON value per line) and JSON (an array of records, or one value)."""

from __future__ import annotations

import io
import json
from typing import BinaryIO, Iterator

from inference_enrich.transforms.formats.json_stream import JsonArrayParser
from inference_enrich.transforms.formats.lines import without_bom
from inference_enrich.transforms.formats.source_item import MAX_RAW_CHARS, TOO_DEEP, SourceItem, raw_text


def jsonl_item(position: int | None, line: bytes, text_field: str) -> SourceItem:
    """One JSON Lines line (``position``: its line number, None when not known) as an item."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return SourceItem(position, error=f"not valid UTF-8: {error}", raw=raw_text(line))
    if not decoded.strip():
        return SourceItem(position, error="blank line: expected a JSON object", raw=decoded.rstrip("\r\n"))
    try:
        return SourceItem(position, value=json.loads(decoded))
    except json.JSONDecodeError as error:
        return SourceItem(position, error=f"invalid JSON: {error}", raw=decoded.rstrip("\r\n"))
    except RecursionError:
        return SourceItem(position, error=TOO_DEEP, raw=decoded.rstrip("\r\n")[:MAX_RAW_CHARS])


def read_jsonl(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """One JSON value per line; blank lines and undecodable bytes are reported, not skipped."""
    for number, line in enumerate(without_bom(stream), start=1):
        yield jsonl_item(number, line, text_field)


def read_json(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """A JSON array of records (or one top-level value), parsed element by element.

    A malformed element hides where the next one starts, so it ends the file: one item for
    it and the rest of the array (``rest_unread``), with at most ``MAX_RAW_CHARS`` of raw text
    and never more than ``MAX_JSON_ELEMENT_CHARS`` read ahead (``json_stream``).
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")  # -sig: a leading BOM is not data
    parser = JsonArrayParser(text)
    try:
        yield from parser.items()
    except UnicodeDecodeError as error:
        yield SourceItem(parser.line, error=f"not valid UTF-8: {error}", raw=None, rest_unread=True)
