"""Incremental parsing of a JSON array, one element at a time, from a text stream.

Memory stays bounded whatever the file: the parser reads ahead at most
``MAX_JSON_ELEMENT_CHARS`` for one element, and a malformed element (which hides where the
next one starts) ends the file with one item holding at most ``MAX_RAW_CHARS`` of it.
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

from inference_enrich.transforms.formats.source_item import MAX_RAW_CHARS, SourceItem

JSON_CHUNK_CHARS = 1 << 16
MAX_JSON_ELEMENT_CHARS = 1 << 24
"""Read-ahead bound for one JSON array element (16 Mi characters): a larger or unterminated
element ends the file, so a malformed one never pulls the rest of a large file into memory."""


class _ElementTooLarge(ValueError):
    """An element still undecodable after ``MAX_JSON_ELEMENT_CHARS``: reading stops there."""


class JsonArrayParser:
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
