"""Beam YAML's error-handling convention for our transforms (see ``beam_yaml``): with
``error_handling: {output: NAME}`` a step's dead letters come out as the output ``NAME``, as
rows of ``DEAD_LETTER_ROW`` (the record as a JSON string, so every row has one schema);
without it the first dead letter fails the pipeline, as Beam's own transforms do.
"""

import json
from typing import Any, Mapping, Optional

import apache_beam as beam
from apache_beam.typehints.row_type import RowTypeConstraint

_DEAD_LETTER_FIELDS: list[tuple[str, Any]] = [  # Any: Beam types the hints as plain classes
    ("stage", str),
    ("error", str),
    ("source", Optional[str]),
    ("line", Optional[int]),
    ("offset", Optional[int]),
    ("record", Optional[str]),  # the parsed record as JSON; None when only the raw text is known
    ("raw", Optional[str]),
]
DEAD_LETTER_ROW = RowTypeConstraint.from_fields(_DEAD_LETTER_FIELDS)
"""Schema of the dead-letter rows of the error outputs."""


class DeadLetterError(RuntimeError):
    """A record failed in a transform given no ``error_handling``."""


def dead_letter_row(letter: Mapping[str, Any]) -> beam.Row:
    """A dead letter (``documents.dead_letter``'s dict) as a ``DEAD_LETTER_ROW`` row."""
    record = letter.get("record")
    return beam.Row(
        stage=letter["stage"],
        error=letter["error"],
        source=letter.get("source"),
        line=letter.get("line"),
        offset=letter.get("offset"),
        record=None if record is None else json.dumps(record, ensure_ascii=False, default=str),
        raw=letter.get("raw"),
    )


def dead_letter_dict(letter: Any) -> dict[str, Any]:
    """A dead-letter row back as the job's dead letter (a dict passes through unchanged)."""
    if isinstance(letter, Mapping):
        return dict(letter)
    fields = letter._asdict()
    restored: dict[str, Any] = {"stage": fields["stage"], "error": fields["error"]}
    for name in ("source", "line", "offset"):
        if fields.get(name) is not None:
            restored[name] = fields[name]
    if fields.get("record") is not None:
        restored["record"] = json.loads(fields["record"])
    else:
        restored["raw"] = fields.get("raw")
    return restored


def fail_on_dead_letter(letter: Mapping[str, Any]) -> None:
    """Fails the bundle (so the pipeline) naming the stage, the place and the error."""
    where = f" at {letter['source']}:{letter.get('line', '?')}" if letter.get("source") else ""
    raise DeadLetterError(
        f"a record failed at stage '{letter['stage']}'{where}: {letter['error']} "
        "(give the transform error_handling: {output: NAME} to collect such records instead)"
    )


def error_output(error_handling: object) -> Optional[str]:
    """The dead-letter output's name. Beam YAML passes the step's ``error_handling`` as the
    mapping the YAML spelled (``ErrorHandlingConfig`` is the annotation its docs read)."""
    if error_handling is None:
        return None
    if not isinstance(error_handling, Mapping) or set(error_handling) != {"output"}:
        raise ValueError(f"error_handling takes one key, output (the name of the dead-letter "
                         f"output), got {error_handling!r}")
    return str(error_handling["output"])


def with_dead_letters(outputs: dict[str, beam.PCollection], letters: beam.PCollection,
                      error_handling: object) -> dict[str, beam.PCollection]:
    """``outputs`` plus the dead letters as the output ``error_handling`` names; without
    ``error_handling``, a step that fails the pipeline on the first dead letter."""
    name = error_output(error_handling)
    if name is None:
        _ = letters | "FailOnDeadLetter" >> beam.Map(fail_on_dead_letter)
        return outputs
    if name in outputs:
        raise ValueError(f"error_handling output '{name}' clashes with the output of that name")
    rows = letters | "DeadLetterRows" >> beam.Map(dead_letter_row).with_output_types(DEAD_LETTER_ROW)
    return {**outputs, name: rows}
