"""Write dead letters as JSON Lines under ``<output>/_dead_letter/``.

The leading underscore keeps them out of ``pyarrow.dataset.dataset(<output>)``; each line is
one dead letter as built by ``documents.dead_letter`` (stage, error, source, line, record/raw).
They are staged and published with the rest of the run's output (see ``bundle_files``).
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam

from inference_enrich.transforms.bundle_files import BundleFileWriter, RunFiles

DEAD_LETTER_DIR = "_dead_letter"


class JsonLinesBundleWriter(BundleFileWriter):
    """One JSON Lines file per bundle."""

    suffix = ".jsonl"
    counter_name = "dead_letters_written"

    def write(self, element: dict[str, Any]) -> None:
        self._stream.write(dead_letter_line(element))


def dead_letter_line(letter: dict[str, Any]) -> bytes:
    """One JSON line. Letters ``documents.dead_letter`` built are valid Unicode; one holding
    a lone surrogate anyway (built by a user's own DoFn) is written with ``\\uXXXX`` escapes,
    which ``json.loads`` restores exactly, instead of failing the bundle."""
    line = json.dumps(letter, ensure_ascii=False, default=str) + "\n"
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(letter, ensure_ascii=True, default=str) + "\n").encode("ascii")


def dead_letter_directory(output: str) -> str:
    return f"{output.rstrip('/')}/{DEAD_LETTER_DIR}"


class WriteDeadLetters(beam.PTransform):
    """Dead letters (from any number of stages) -> ``_dead_letter/part-*.jsonl`` staged for
    ``run_files``' output; returns the names of the files written by committed bundles."""

    def __init__(self, output: str | RunFiles) -> None:
        """``output``: a directory (published bundle by bundle, for any pipeline), or the
        ``RunFiles`` of an ``enrich run`` (published once the run has succeeded)."""
        super().__init__()
        run_files = output if isinstance(output, RunFiles) else RunFiles.published_per_bundle(output)
        self._writer = JsonLinesBundleWriter(run_files, DEAD_LETTER_DIR)

    def expand(self, dead_letters):
        return dead_letters | "WriteDeadLetterFiles" >> beam.ParDo(self._writer)
