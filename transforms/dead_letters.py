"""Write dead letters as JSON Lines under ``<output>/_dead_letter/``.

The leading underscore keeps them out of ``pyarrow.dataset.dataset(<output>)``; each line is
one dead letter as built by ``documents.dead_letter`` (stage, error, source, line, record/raw).
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam

from inference_enrich.transforms.bundle_files import BundleFileWriter

DEAD_LETTER_DIR = "_dead_letter"


class JsonLinesBundleWriter(BundleFileWriter):
    """One JSON Lines file per bundle."""

    suffix = ".jsonl"
    counter_name = "dead_letters_written"

    def write(self, element: dict[str, Any]) -> None:
        line = json.dumps(element, ensure_ascii=False, default=str) + "\n"
        self._stream.write(line.encode("utf-8"))


def dead_letter_directory(output: str) -> str:
    return f"{output.rstrip('/')}/{DEAD_LETTER_DIR}"


class WriteDeadLetters(beam.PTransform):
    """Dead letters (from any number of stages) -> ``<output>/_dead_letter/part-*.jsonl``."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._writer = JsonLinesBundleWriter(dead_letter_directory(output))

    def expand(self, dead_letters):
        return dead_letters | "WriteDeadLetterFiles" >> beam.ParDo(self._writer)
