"""Streaming readers for the input formats: one ``SourceItem`` per record, never a whole file.

Each reader takes a binary file object (already decompressed) and yields items in file order.
A record that cannot be parsed is still yielded, with its error and raw text, so the caller
can dead-letter it: nothing is skipped silently (blank lines of plain text files are
paragraph breaks, not records, and are only counted).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Callable, Iterator

JSON_CHUNK_CHARS = 1 << 16
MAX_RAW_CHARS = 1 << 16
"""Raw text kept in a dead letter whose input is larger (an unparseable JSON array tail, a
CSV row csv gave up on): holding all of it would defeat streaming."""
MAX_JSON_ELEMENT_CHARS = 1 << 24
"""Read-ahead bound for one JSON array element (16 Mi characters): a larger or unterminated
element ends the file, so a malformed one never pulls the rest of a large file into memory."""
TOO_DEEP = "invalid JSON: nested too deep to parse"
"""A value nested past the parser's recursion limit: that record alone is a dead letter."""
MAX_CSV_FIELD_CHARS = 1 << 24
"""csv's bound on one field (16 Mi characters; Python's default, 131,072, is smaller than
real documents). A field over it is absurd or malformed (an unclosed quote swallows the file):
its row alone is a dead letter."""

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


@dataclass(frozen=True)
class SourceItem:
    """One record of a file: ``value`` when parsed, else ``error`` and ``raw``."""

    line: int | None
    value: Any = None
    error: str | None = None
    raw: str | None = None
    blank: bool = False
    rest_unread: bool = False  # the reader cannot go past this item: the rest of the file is lost


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


UTF8_BOM = b"\xef\xbb\xbf"


def first_line_without_bom(line: bytes) -> bytes | None:
    """A file's first line with a UTF-8 byte-order mark (Excel and Notepad write one)
    removed: it marks the encoding and is no part of the first record. None when the file
    held the mark alone (an empty file). The one rule for whole-file and byte-range reads."""
    if not line.startswith(UTF8_BOM):
        return line
    return line[len(UTF8_BOM):] or None


def without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a file, the first without its byte-order mark (``first_line_without_bom``)."""
    for number, line in enumerate(lines):
        if number == 0:
            first = first_line_without_bom(line)
            if first is None:
                return
            line = first
        yield line


def _raw(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace").rstrip("\r\n")


def jsonl_item(position: int | None, line: bytes, text_field: str) -> SourceItem:
    """One JSON Lines line (``position``: its line number, None when not known) as an item."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return SourceItem(position, error=f"not valid UTF-8: {error}", raw=_raw(line))
    if not decoded.strip():
        return SourceItem(position, error="blank line: expected a JSON object", raw=decoded.rstrip("\r\n"))
    try:
        return SourceItem(position, value=json.loads(decoded))
    except json.JSONDecodeError as error:
        return SourceItem(position, error=f"invalid JSON: {error}", raw=decoded.rstrip("\r\n"))
    except RecursionError:
        return SourceItem(position, error=TOO_DEEP, raw=decoded.rstrip("\r\n")[:MAX_RAW_CHARS])


def text_item(position: int | None, line: bytes, text_field: str) -> SourceItem:
    """One plain-text line as an item: a document ``{text_field: line}``, or blank."""
    try:
        decoded = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        return SourceItem(position, error=f"not valid UTF-8: {error}", raw=_raw(line))
    if decoded.strip():
        return SourceItem(position, value={text_field: decoded})
    return SourceItem(position, blank=True)


def read_jsonl(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """One JSON value per line; blank lines and undecodable bytes are reported, not skipped."""
    for number, line in enumerate(without_bom(stream), start=1):
        yield jsonl_item(number, line, text_field)


def read_text(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """Each non-blank line is a document ``{text_field: line}``."""
    for number, line in enumerate(without_bom(stream), start=1):
        yield text_item(number, line, text_field)


def read_csv(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """A header row, then one record per row (all values are strings).

    A row csv gives up on (a field over ``MAX_CSV_FIELD_CHARS``, a stray NUL) is one dead
    letter: ``_CsvLines`` finds where that row really ends and reading goes on from the next.
    """
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)  # process-wide; every CSV read sets the same bound
    lines = _CsvLines(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline=""))
    reader = csv.DictReader(lines)
    try:
        reader.fieldnames  # reads the header row
    except csv.Error as error:
        yield SourceItem(1, error=f"invalid CSV header: {error}", raw=lines.row_text(), rest_unread=True)
        return
    while True:
        lines.start_row()
        line = lines.count + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raw = lines.row_text()
            if not lines.skip_rest_of_row():
                yield SourceItem(line, error=f"invalid CSV: {error}; a quoted field never closes, so the "
                                 "rest of the file belongs to this row", raw=raw, rest_unread=True)
                return
            yield SourceItem(line, error=f"invalid CSV: {error}", raw=raw)
            continue
        if lines.open_quote_at_end():  # csv closes a field the file's end left open
            yield SourceItem(line, error="invalid CSV: a quoted field never closes, so the rest of the "
                             "file belongs to this row", raw=lines.row_text(), rest_unread=True)
            return
        values = [v for v in row.values() if isinstance(v, str)]
        if any(_has_surrogates(v) for v in values):
            raw = ",".join(v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for v in values)
            yield SourceItem(line, error="not valid UTF-8", raw=raw)
        elif None in row:
            yield SourceItem(line, error="row has more fields than the header", raw=lines.row_text().rstrip("\r\n"))
        else:
            yield SourceItem(line, value=dict(row))


class _CsvLines:
    """The physical lines of a CSV text, as ``csv`` consumes them, counted, with those of the
    current row kept: after csv gives up mid-row it resumes at the next *line*, which may be
    inside the row's quoted field, so ``skip_rest_of_row`` first consumes the row's remaining
    lines (a quote-aware scan of the default dialect, run only on that error path)."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self.count = 0
        self._row: list[str] = []
        self._ended = False

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        try:
            line = next(self._text)
        except StopIteration:
            self._ended = True
            raise
        self.count += 1
        self._row.append(line)
        return line

    def start_row(self) -> None:
        self._row = []

    def row_text(self) -> str:
        return "".join(self._row)[:MAX_RAW_CHARS]

    def open_quote_at_end(self) -> bool:
        """Whether the file ended inside a quoted field of the current row: csv then returns
        the row as if the field had closed, with every later line in it."""
        if not self._ended:
            return False
        in_quotes = False
        for line in self._row:
            in_quotes = _quote_open_after(line, in_quotes)
        return in_quotes

    def skip_rest_of_row(self) -> bool:
        """Consume the lines left in the current row; False if the file ends inside a quoted field."""
        in_quotes = False
        for line in self._row:
            in_quotes = _quote_open_after(line, in_quotes)
        while in_quotes:
            next_line = next(self._text, None)
            if next_line is None:
                return False
            self.count += 1
            in_quotes = _quote_open_after(next_line, in_quotes)
        return True


def _quote_open_after(line: str, in_quotes: bool) -> bool:
    """Whether a quoted field is still open at the end of ``line`` (csv's default dialect: a
    quote opens a field only at its start, and ``""`` inside one is a literal quote)."""
    at_field_start, i = not in_quotes, 0
    while i < len(line):
        if in_quotes:
            close = line.find('"', i)
            if close < 0:
                return True
            if line.startswith('"', close + 1):  # an escaped quote
                i = close + 2
                continue
            in_quotes, at_field_start, i = False, False, close + 1
            continue
        char = line[i]
        if char == '"' and at_field_start:
            in_quotes = True
        at_field_start = char in ",\r\n"
        i += 1
    return in_quotes


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def read_parquet(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """Rows in batches, so a large file never sits in memory whole; ``line`` is the row."""
    import pyarrow.parquet as pq  # here: the job config names FORMATS, and `enrich --help` loads it

    row = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=1024):
        for value in batch.to_pylist():
            row += 1
            yield SourceItem(row, value=value)


def read_json(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """A JSON array of records (or one top-level value), parsed element by element.

    A malformed element hides where the next one starts, so it ends the file: one item for
    it and the rest of the array (``rest_unread``), with at most ``MAX_RAW_CHARS`` of raw text
    and never more than ``MAX_JSON_ELEMENT_CHARS`` read ahead.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")  # -sig: a leading BOM is not data
    parser = _JsonArrayParser(text)
    try:
        yield from parser.items()
    except UnicodeDecodeError as error:
        yield SourceItem(parser.line, error=f"not valid UTF-8: {error}", raw=None, rest_unread=True)


class _ElementTooLarge(ValueError):
    """An element still undecodable after ``MAX_JSON_ELEMENT_CHARS``: reading stops there."""


class _JsonArrayParser:
    """Incremental parsing of ``[v1, v2, ...]`` from a text stream, one element at a time."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self._buffer = ""
        self._pos = 0
        self._decoder = json.JSONDecoder()
        self.line = 1

    def _fill(self) -> bool:
        """Read more: as much again as is pending, so a long element is re-decoded only
        O(log n) times rather than once per chunk."""
        pending = len(self._buffer) - self._pos
        chunk = self._text.read(max(JSON_CHUNK_CHARS, min(pending, MAX_JSON_ELEMENT_CHARS - pending)))
        if not chunk:
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def _peek(self) -> str:
        """Next non-whitespace character ('' at end of input), counting lines skipped."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in " \t\r\n":
                if self._buffer[self._pos] == "\n":
                    self.line += 1
                self._pos += 1
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def _decode_value(self) -> Any:
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if self._more_input_may_help(error) and self._fill_within_bound():
                    continue
                raise
            if end == len(self._buffer) and self._fill_within_bound():
                continue  # a number at the very end may continue in the next chunk
            self.line += self._buffer.count("\n", self._pos, end)
            self._pos = end
            return value

    def _more_input_may_help(self, error: json.JSONDecodeError) -> bool:
        """Whether ``error`` may only mean the element is cut by the end of the buffer: an
        unterminated string, or an error within a token's length (``-Infinity``, a
        ``\\uXXXX`` pair) of the end. Anything earlier is malformed whatever follows."""
        return error.msg.startswith("Unterminated string") or error.pos >= len(self._buffer) - 16

    def _fill_within_bound(self) -> bool:
        if len(self._buffer) - self._pos >= MAX_JSON_ELEMENT_CHARS:
            raise _ElementTooLarge(f"larger than {MAX_JSON_ELEMENT_CHARS} characters")
        return self._fill()

    def _rest(self) -> str:
        """Raw text from the current position, at most ``MAX_RAW_CHARS`` of it."""
        while len(self._buffer) - self._pos < MAX_RAW_CHARS and self._fill():
            pass
        return self._buffer[self._pos : self._pos + MAX_RAW_CHARS]

    def _cut(self, line: int, error: str) -> SourceItem:
        return SourceItem(line, error=f"{error}; the rest of the file is not read", raw=self._rest(),
                          rest_unread=True)

    def items(self) -> Iterator[SourceItem]:
        first = self._peek()
        if first == "":
            return
        if first != "[":
            line = self.line
            try:
                yield SourceItem(line, value=self._decode_value())
            except (json.JSONDecodeError, _ElementTooLarge, RecursionError) as error:
                yield self._cut(line, f"invalid JSON: {error}")
            return
        self._pos += 1
        index = 0
        while True:
            char = self._peek()
            if char == "]" and index == 0:
                return
            line = self.line
            try:
                value = self._decode_value()
            except (json.JSONDecodeError, _ElementTooLarge, RecursionError) as error:
                yield self._cut(line, f"invalid JSON in array element {index}: {error}")
                return
            yield SourceItem(line, value=value)
            index += 1
            separator = self._peek()
            if separator == ",":
                self._pos += 1
            elif separator == "]":
                return
            else:
                yield self._cut(self.line, f"invalid JSON after array element {index - 1}: expected ',' or ']'")
                return


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
