"""What every writer can hold: checked once per record, so bad data is one dead letter.

A parsed record can hold strings no writer can encode: a JSON ``"\\ud83d"`` escape decodes to
a lone UTF-16 surrogate, which is not valid Unicode, so UTF-8 (Parquet, JSON Lines, the
index clients' request bodies) and Beam's own coders refuse it. A record nested very deep
is the other trap: parsers, pickling and the index clients recurse once per level, and
past Python's recursion limit they raise instead of writing. Either, met by a writer, used
to fail the whole bundle (and the run; on Kafka the bundle was retried forever).

``unwritable_part`` finds such a value when the record is validated, so it becomes one dead
letter before any work is spent on it. ``index_json`` is the index sinks' per-document
check: search indexes take JSON only, so it also refuses values that only Parquet's
passthrough column (``json.dumps(default=str)``) can keep, such as bytes or NaN.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from typing import Any

MAX_NESTING_DEPTH = 100
"""Deepest nesting a record may have (objects and arrays). Far beyond real documents, and far
within the recursion every component spends on a level (Python's limit is 1,000 frames, of
which a Beam worker's stack already uses a few hundred)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class UnwritableValue(ValueError):
    """A value a writer cannot hold; the message names where it is and why."""


def unwritable_part(value: Any, skip_field: str | None = None) -> str | None:
    """Why ``value`` (a record) cannot be written, naming the field, or None if it can.

    ``skip_field`` is a top-level field someone else checks (the text, which the tokenizer
    rejects with its own reason)."""
    try:
        _walk(value, "", 0, as_json=False, skip_field=skip_field)
    except UnwritableValue as problem:
        return str(problem)
    return None


def _walk(value: Any, path: str, depth: int, as_json: bool, skip_field: str | None = None) -> Any:
    """The one walk over a record's values: every string (names too) checked for lone
    surrogates, nesting bounded, and the record rebuilt. ``as_json``: names must be strings
    and every other value becomes JSON (``_json_leaf``); else such values pass as they are."""
    if isinstance(value, str):
        _check_text(value, path)
        return value
    if not isinstance(value, (dict, list, tuple)):
        return _json_leaf(value, path) if as_json else value
    if depth >= MAX_NESTING_DEPTH:
        raise UnwritableValue(f"{_where(path)} is nested deeper than {MAX_NESTING_DEPTH} levels")
    if not isinstance(value, dict):
        return [_walk(item, f"{path}[{position}]", depth + 1, as_json) for position, item in enumerate(value)]
    converted: dict[Any, Any] = {}
    for key, item in value.items():
        if depth == 0 and skip_field is not None and key == skip_field:
            continue
        inner = f"{path}.{_ascii(key)}" if path else _ascii(key)
        if isinstance(key, str):
            _check_text(key, inner, "its name")
        elif as_json:
            raise UnwritableValue(f"{_where(inner)}: a name of type {type(key).__name__}, not a string")
        converted[key] = _walk(item, inner, depth + 1, as_json)
    return converted


def _check_text(text: str, path: str, what: str = "") -> None:
    found = _SURROGATE.search(text)
    if found is not None:
        raise UnwritableValue(
            f"{_where(path)}{' ' + what if what else ''} is not valid Unicode: a lone surrogate "
            f"{ascii(found.group())} at position {found.start()}"
        )


def _where(path: str) -> str:
    return f"field '{path}'" if path else "the record"


def _ascii(name: Any) -> str:
    """A field name safe to put in a message (surrogates escaped)."""
    return ascii(name)[1:-1] if isinstance(name, str) else str(name)


def index_json(value: Any, path: str = "", depth: int = 0) -> Any:
    """``value`` as plain JSON for a search index, or ``UnwritableValue`` naming the field.

    Converted as the Elasticsearch client's serializer does: dates and times to ISO 8601,
    ``Decimal`` to a float, tuples to lists, UUIDs to strings. Refused: bytes, sets and
    other types JSON has no form for, NaN and infinities (not JSON), lone surrogates, keys
    that are not strings, nesting deeper than ``MAX_NESTING_DEPTH``."""
    return _walk(value, path, depth, as_json=True)


def _json_leaf(value: Any, path: str) -> Any:
    """A value that is neither a string nor a container, as JSON (``index_json``)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnwritableValue(f"{_where(path)} holds {value!r}, which is not JSON (NaN or infinite)")
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _json_leaf(float(value), path)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise UnwritableValue(f"{_where(path)} holds a value of type {type(value).__name__}, which a search index "
                          "cannot hold (JSON has no form for it)")
