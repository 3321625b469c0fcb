"""Where a CSV row really ends when ``csv`` cannot say (``CsvLines``): after an error
mid-row, and when the file's end leaves a quoted field open."""

from __future__ import annotations

import io

from inference_enrich.transforms.formats.source_item import MAX_RAW_CHARS


class CsvLines:
    """The physical lines of a CSV text, as ``csv`` consumes them, counted, with those of the
    current row kept: after csv gives up mid-row it resumes at the next *line*, which may be
    inside the row's quoted field, so ``skip_rest_of_row`` first consumes the row's remaining
    lines (a quote-aware scan of the default dialect, run only on that error path)."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self.count = 0
        self._row: list[str] = []
        self._ended = False

    def __iter__(self) -> "CsvLines":
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
        return self._ended and self._quote_open_in_row()

    def skip_rest_of_row(self) -> bool:
        """Consume the lines left in the current row; False if the file ends inside a quoted field."""
        in_quotes = self._quote_open_in_row()
        while in_quotes:
            next_line = next(self._text, None)
            if next_line is None:
                return False
            self.count += 1
            in_quotes = _quote_open_after(next_line, in_quotes)
        return True

    def _quote_open_in_row(self) -> bool:
        """Whether a quoted field is open after the current row's lines read so far."""
        in_quotes = False
        for line in self._row:
            in_quotes = _quote_open_after(line, in_quotes)
        return in_quotes


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
