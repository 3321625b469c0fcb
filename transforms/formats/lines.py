"""The lines of a line-based file (JSON Lines, plain text), the first without its
byte-order mark: one rule for whole-file reads and byte-range reads (``line_ranges``)."""

from __future__ import annotations

from typing import Iterator

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
