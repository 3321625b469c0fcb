"""What every reader yields: one ``SourceItem`` per record, parsed or with its error.

A record that cannot be parsed is still an item, with its error and raw text, so the caller
can dead-letter it: nothing is skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_RAW_CHARS = 1 << 16
"""Raw text kept in a dead letter whose input is larger (an unparseable JSON array tail, a
CSV row csv gave up on): holding all of it would defeat streaming."""
TOO_DEEP = "invalid JSON: nested too deep to parse"
"""A value nested past the parser's recursion limit: that record alone is a dead letter."""


@dataclass(frozen=True)
class SourceItem:
    """One record of a file: ``value`` when parsed, else ``error`` and ``raw``."""

    line: int | None
    value: Any = None
    error: str | None = None
    raw: str | None = None
    blank: bool = False
    rest_unread: bool = False  # the reader cannot go past this item: the rest of the file is lost


def raw_text(data: bytes) -> str:
    """Undecodable bytes as text a dead letter can hold (bad bytes escaped, line end dropped)."""
    return data.decode("utf-8", "backslashreplace").rstrip("\r\n")
