"""Per-bundle file sinks on any fsspec URL.

Each bundle writes its own file, under a hidden temporary name, renamed to ``part-<uuid>``
when the bundle finishes. Readers (``pyarrow.dataset`` ignores names starting with '.' or
'_') therefore never see a partial file, a retried bundle leaves no duplicate, and the same
sink works in batch and streaming pipelines (no GroupByKey that would hold output back
until an unbounded source ends).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, BinaryIO

import apache_beam as beam
import fsspec
from apache_beam.metrics import Metrics

from inference_enrich.transforms.read_files import METRICS_NAMESPACE

LOG = logging.getLogger(__name__)


class BundleFileWriter(beam.DoFn):
    """Base class: subclasses say how to open, write to and close one file."""

    suffix = ""
    counter_name = "records_written"

    def __init__(self, directory: str) -> None:
        self._directory = directory.rstrip("/")
        self._written = Metrics.counter(METRICS_NAMESPACE, self.counter_name)
        self._stream: BinaryIO | None = None

    def setup(self) -> None:
        self._fs, self._path = fsspec.core.url_to_fs(self._directory)
        self._fs.makedirs(self._path, exist_ok=True)

    def start_bundle(self) -> None:
        self._stream = None

    def process(self, element: Any) -> None:
        if self._stream is None:
            name = f"part-{uuid.uuid4().hex}{self.suffix}"
            self._final_path = f"{self._path}/{name}"
            self._temp_path = f"{self._path}/.{name}.inprogress"
            self._stream = self._fs.open(self._temp_path, "wb")
            self.open_file(self._stream)
        self.write(element)
        self._written.inc()

    def finish_bundle(self) -> None:
        if self._stream is None:
            return
        self.close_file()
        self._stream.close()
        self._stream = None
        self._fs.mv(self._temp_path, self._final_path)

    def teardown(self) -> None:
        if self._stream is not None:  # the bundle failed: leave nothing half-written behind
            try:
                self._stream.close()
                self._fs.rm(self._temp_path)
            except Exception as error:
                LOG.warning("could not remove %s: %s", self._temp_path, error)

    def open_file(self, stream: BinaryIO) -> None:
        """Called once per file, before the first ``write``."""

    def write(self, element: Any) -> None:
        raise NotImplementedError

    def close_file(self) -> None:
        """Called once per file, before it is closed and renamed."""
