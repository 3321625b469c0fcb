"""Write dead letters as JSON Lines under ``<output>/_dead_letter/``.

The leading underscore keeps them out of ``pyarrow.dataset.dataset(<output>)``; each line is
one dead letter as built by ``documents.dead_letter`` (stage, error, source, line, record/raw).
They are staged and published with the rest of the run's output (see ``bundle_files``).
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import apache_beam as beam

from inference_enrich.transforms.bundle_files import BundleFileWriter, RunFiles
from inference_enrich.transforms.publishing.output_dir import DEAD_LETTER_DIR
from inference_enrich.transforms.publishing.write_and_publish import WriteAndPublish


class JsonLinesBundleWriter(BundleFileWriter):
    """One JSON Lines file per bundle."""

    suffix = ".jsonl"
    counter_name = "dead_letters_written"

    def open_file(self, stream: BinaryIO) -> None:
        self._file = stream

    def write(self, element: dict[str, Any]) -> None:
        self._file.write(dead_letter_line(element))


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
    """Dead letters (from any number of stages) -> ``_dead_letter/part-*.jsonl``; returns the
    names of the files written by committed bundles."""

    def __init__(self, output: str | RunFiles, *, announce: bool = False) -> None:
        """``output``: a directory, whose ``_dead_letter/`` the pipeline publishes itself
        (``publishing``; with its own ``_SUCCESS``, so that the Parquet writer of the same
        directory and this one never publish into each other's files), or the ``RunFiles``
        of an ``enrich run`` (published by the run with its other files). ``announce``:
        print a line once published (``publishing.WriteAndPublish``)."""
        super().__init__()
        self._output = output
        self._announce = announce

    def expand(self, dead_letters):
        if isinstance(self._output, RunFiles):
            writer = JsonLinesBundleWriter(self._output, DEAD_LETTER_DIR)
            return dead_letters | "WriteDeadLetterFiles" >> beam.ParDo(writer)
        return dead_letters | "WriteDeadLetterFiles" >> WriteAndPublish(
            JsonLinesBundleWriter, dead_letter_directory(self._output), announce=self._announce)
