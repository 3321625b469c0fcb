"""The elements that flow through the pipeline: documents, enriched documents, dead letters.

A document is a JSON object read from a source. Its text comes from ``text_field`` and its
id from ``id_field`` (else a stable hash of the whole record, so re-runs give the same ids).
Every other field passes through untouched.

A dead letter is a plain dict, written as one JSON line, holding everything needed to find,
fix and replay the input::

    {"stage": "parse" | "validate" | "inference" | ...,
     "error": "why it failed",
     "source": "file URL or kafka://topic/partition",
     "line": 17,                       # 1-based line (text formats) or row (Parquet), if known
     "offset": 1048576,                # byte offset of the line (split JSONL/text reads only)
     "record": {...} | "raw": "..."}   # the parsed record, else the raw text

A line-based file read in byte ranges (``line_ranges``) gives every record its ``offset``
and, only in the range that starts the file, its ``line``: counting lines before a range's
start would mean reading the file up to it. (``source``, ``line`` and ``offset`` are absent
for records that come from a user's own pipeline through ``Enrich``.)

An ``EnrichedDocument`` (a document and its inference result) is the one record type from
inference to the writers; each writer makes the form its format needs from it (the Parquet
row, the index document body). ``Enrich`` emits ``EnrichedRecord``s, ``EnrichedDocument``s
that also read as the enriched record (the input record plus the output field,
``is_truncated`` and ``id``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from collections.abc import Iterator, Mapping
from typing import Any

from inference_enrich.inference.results import InferenceResult
from inference_enrich.transforms.writable import unwritable_part

PARSE = "parse"
VALIDATE = "validate"
INFERENCE = "inference"


@dataclass(frozen=True)
class RecordFields:
    """Which record fields hold the text and the id."""

    text_field: str = "text"
    id_field: str = "id"


@dataclass(frozen=True)
class Document:
    """A validated input record, ready for inference."""

    id: str
    text: str
    record: dict[str, Any]
    source: str | None = None  # file URL, kafka://topic/partition; None: a user's pipeline
    line: int | None = None  # 1-based line (text formats) or row (Parquet) in ``source``
    offset: int | None = None  # byte offset of the record's line in ``source`` (split reads)


@dataclass(frozen=True)
class EnrichedDocument:
    """A document with its inference result."""

    document: Document
    result: InferenceResult


class InvalidRecord(ValueError):
    """A parsed record that cannot be enriched (wrong type, missing or empty text)."""


def stable_id(record: dict[str, Any]) -> str:
    """A content hash of ``record``: the same record always gets the same id, on any worker."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    # surrogatepass: a lone surrogate must not make the hash raise (ids of valid text unchanged)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def to_document(
    value: Any, fields: RecordFields, source: str | None = None, line: int | None = None,
    offset: int | None = None,
) -> Document:
    """Validate one parsed value; raises ``InvalidRecord`` saying what is wrong."""
    if not isinstance(value, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(value).__name__}")
    if fields.text_field not in value:
        raise InvalidRecord(f"missing text field '{fields.text_field}'")
    text = value[fields.text_field]
    if not isinstance(text, str):
        raise InvalidRecord(
            f"text field '{fields.text_field}' must be a string, got {type(text).__name__}"
        )
    if not text.strip():
        raise InvalidRecord(f"text field '{fields.text_field}' is empty")
    # The text itself is the tokenizer's to reject (a dead letter at stage inference).
    problem = unwritable_part(value, skip_field=fields.text_field)
    if problem is not None:
        raise InvalidRecord(problem)
    raw_id = value.get(fields.id_field)
    doc_id = stable_id(value) if raw_id is None or raw_id == "" else str(raw_id)
    return Document(doc_id, text, value, source, line, offset)


def dead_letter(
    stage: str,
    error: str,
    source: str | None,
    *,
    record: Any = None,
    raw: str | None = None,
    line: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """Build a dead letter; ``record`` (parsed) is kept when there is one, else ``raw``.

    A record holding a string that is not valid Unicode (a lone UTF-16 surrogate, which a
    JSON ``\\ud83d`` escape decodes to) or nested too deep for the writers cannot travel in
    a dict through Beam's coders or be written as UTF-8; it is kept as ``raw``, its JSON with
    every such character escaped, which ``json.loads`` turns back into the very same record.
    Such characters in the other strings are written as ``\\udXXX`` escapes.
    """
    if record is not None and unwritable_part(record) is not None:
        record, raw = None, _escaped_json(record)
    letter: dict[str, Any] = {"stage": stage, "error": _escaped(error)}
    if source is not None:
        letter["source"] = _escaped(source)
    if line is not None:
        letter["line"] = line
    if offset is not None:
        letter["offset"] = offset
    if record is not None:
        letter["record"] = record
    else:
        letter["raw"] = None if raw is None else _escaped(raw)
    return letter


def _escaped(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode written as a backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _escaped_json(record: Any) -> str:
    """The record as ASCII JSON; one too deep even for that, as much of it as a message takes."""
    try:
        return json.dumps(record, ensure_ascii=True, default=str)
    except RecursionError:
        return _escaped(repr(record)[:1 << 16])


def document_or_dead_letter(
    value: Any, fields: RecordFields, source: str | None, line: int | None = None,
    offset: int | None = None,
) -> Document | dict[str, Any]:
    """``value`` as a document, or the ``validate`` dead letter saying why it is none: every
    reader ends in this, so that a record the job cannot use never fails a bundle (the runner
    would read it again, forever) and keeps its place (source, line, offset) in its letter."""
    try:
        return to_document(value, fields, source, line, offset)
    except InvalidRecord as error:
        return dead_letter(VALIDATE, str(error), source, record=value, line=line, offset=offset)


def document_dead_letter(document: Document, stage: str, error: str) -> dict[str, Any]:
    """A dead letter for a document that failed after it was parsed."""
    return dead_letter(stage, error, document.source, record=document.record, line=document.line,
                       offset=document.offset)

DEAD_LETTER_TAG = "dead_letter"
"""Tag of the dead-letter output of every DoFn that can reject an element."""


ENRICHED_FIELDS = ("id", "is_truncated")
"""Fields every enriched record has besides the text and output fields."""


@dataclass(frozen=True, eq=False, repr=False)
class EnrichedRecord(EnrichedDocument, Mapping[str, Any]):
    """What ``Enrich`` emits: an ``EnrichedDocument`` that also reads as the enriched record,
    a read-only mapping of the input fields plus ``output_field`` (the embedding),
    ``is_truncated`` and ``id`` (the id field's value as a string, else the record's stable
    hash), which win over input fields of the same names. ``dict(record)`` is a plain dict.
    The writers take it as the ``EnrichedDocument`` it is: nothing is converted back."""

    output_field: str = "embedding"

    def __getitem__(self, key: str) -> Any:
        if key == self.output_field:
            return self.result.embedding
        if key == "is_truncated":
            return self.result.is_truncated
        if key == "id":
            return self.document.id
        return self.document.record[key]

    def __iter__(self) -> Iterator[str]:
        """The keys in the order of ``{**record, output_field: ..., "is_truncated": ..., "id": ...}``."""
        record = self.document.record
        yield from record
        yield from (key for key in (self.output_field, "is_truncated", "id") if key not in record)

    def __len__(self) -> int:
        return len(self.document.record.keys() | {self.output_field, *ENRICHED_FIELDS})

    def __eq__(self, other: object) -> bool:
        return Mapping.__eq__(self, other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


def enriched_record(enriched: EnrichedDocument, output_field: str) -> EnrichedRecord:
    """``enriched`` as the record ``Enrich`` emits, its embedding under ``output_field``."""
    return EnrichedRecord(enriched.document, enriched.result, output_field)


def require_enriched(element: object, writer: str) -> EnrichedDocument:
    """``element``, which a writer takes only as an ``EnrichedDocument`` (what ``Enrich`` and
    the job's inference step emit); anything else fails with a one-line ``TypeError``."""
    if not isinstance(element, EnrichedDocument):
        raise TypeError(f"{writer} takes the records Enrich emits (EnrichedDocument), got "
                        f"{type(element).__name__}")
    return element
