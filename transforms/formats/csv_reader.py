"""CSV: a header row, then one record per row (all values are strings); a row ``csv``
gives up on is one dead letter and reading goes on from the next row (``csv_recovery``)."""

from __future__ import annotations

import csv
import io
from typing import BinaryIO, Iterator

from inference_enrich.transforms.formats.csv_recovery import CsvLines
from inference_enrich.transforms.formats.source_item import SourceItem

MAX_CSV_FIELD_CHARS = 1 << 24
"""csv's bound on one field (16 Mi characters; Python's default, 131,072, is smaller than
real documents). A field over it is absurd or malformed (an unclosed quote swallows the file):
its row alone is a dead letter."""


def read_csv(stream: BinaryIO, text_field: str) -> Iterator[SourceItem]:
    """A header row, then one record per row (all values are strings).

    A row csv gives up on (a field over ``MAX_CSV_FIELD_CHARS``, a stray NUL) is one dead
    letter: ``CsvLines`` finds where that row really ends and reading goes on from the next.
    """
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)  # process-wide; every CSV read sets the same bound
    lines = CsvLines(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline=""))
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


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)
