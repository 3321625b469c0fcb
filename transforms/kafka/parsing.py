"""One Kafka message's value as a document, or as a dead letter naming where it came from.

Shared by both readers (ours and Beam's cross-language one), so a message reads the same
whichever of them fetched it."""

from __future__ import annotations

import json
from typing import Any

from inference_enrich.transforms.documents import PARSE, Document, RecordFields, dead_letter, document_or_dead_letter
from inference_enrich.transforms.formats import TOO_DEEP


def message_to_document(value: bytes | None, key: bytes | None, topic: str, partition: int,
                        offset: int, fields: RecordFields) -> Document | dict[str, Any]:
    """A document, or a dead letter (a dict) naming topic, partition and offset. A record
    without an id takes the message key as its id.

    Never raises for what a message holds: an exception here would fail the bundle, and the
    runner would read the same message again, forever."""
    source = f"kafka://{topic}/{partition}"
    where = {"topic": topic, "partition": partition, "offset": offset}
    try:
        record = json.loads((value or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raw = (value or b"").decode("utf-8", "backslashreplace")
        if isinstance(error, RecursionError):
            reason = TOO_DEEP
        else:
            problem = "not valid UTF-8" if isinstance(error, UnicodeDecodeError) else "invalid JSON"
            reason = f"{problem}: {error}"
        return {**dead_letter(PARSE, reason, source, raw=raw, line=offset), **where}
    if isinstance(record, dict) and record.get(fields.id_field) in (None, "") and key:
        record = {**record, fields.id_field: key.decode("utf-8", "backslashreplace")}
    element = document_or_dead_letter(record, fields, source, offset)
    return element if isinstance(element, Document) else {**element, **where}
