"""Per-bundle file sinks on any fsspec URL, committed the way Beam's ``fileio`` commits.

A run stages every file it writes under ``<output>/.staging-<run id>/`` (a hidden name:
``pyarrow.dataset`` and our own input listing skip it) and publishes it under the same
relative name in ``<output>``. Each bundle writes one file and, when it finishes, closes it
and emits its name. A bundle attempt the runner gives up on (a failed or retried bundle)
leaves an orphan in staging, but its outputs are discarded, so its name never reaches the
next step: the names that do are exactly the files of committed bundles.

- **Batch**: ``CommitManifest`` gathers those names with a global combine (it runs once all
  writers' bundles have committed) into ``<staging>/_manifest.json``; once the pipeline has
  succeeded, ``publishing/publish.py`` moves exactly those files into the output.
- **Streaming** (no end to wait for): each bundle's file is moved into the output by Beam's
  bundle finalization, which the runner calls only after it has durably committed the
  bundle; the runner must support it (FnApiRunner and Dataflow do), as the Kafka
  reader's offset commits already require.

No GroupByKey holds output back, so the same sink streams on the in-process runner.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Iterator

import apache_beam as beam
import fsspec
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from inference_enrich.transforms.metrics import StepMetrics

LOG = logging.getLogger(__name__)
STAGING_PREFIX = ".staging-"
MANIFEST = "_manifest.json"
HANDED_OVER = "_handed_over"
"""Streaming: ``<staging>/_handed_over/<name>`` notes a file handed to bundle finalization."""


@dataclass(frozen=True)
class RunFiles:
    """Where one run stages its files and where it publishes them (see module docstring)."""

    output: str
    run_id: str
    streaming: bool = False  # publish each bundle's files by bundle finalization

    @classmethod
    def published_per_bundle(cls, output: str) -> "RunFiles":
        """Files of ``output`` published by bundle finalization, as in streaming runs: for a
        public writer given unbounded input (bounded input is published by pipeline steps,
        ``publishing.write_and_publish``, since not every runner finalizes bundles)."""
        return cls(output, uuid.uuid4().hex, streaming=True)

    def for_run(self, run_id: str | None) -> "RunFiles":
        """These files for the run id a pipeline made when it ran (a side input), or as they
        are when it is None (``enrich run`` makes its run id before it builds the pipeline)."""
        return self if run_id is None else replace(self, run_id=run_id)

    @property
    def staging(self) -> str:
        return f"{self.output.rstrip('/')}/{STAGING_PREFIX}{self.run_id}"

    def paths(self) -> tuple[fsspec.AbstractFileSystem, str, str]:
        """The filesystem, the output path and the staging path on it."""
        fs, output = fsspec.core.url_to_fs(self.output.rstrip("/"))
        return fs, output, f"{output}/{STAGING_PREFIX}{self.run_id}"

    def publish_file(self, name: str) -> None:
        """Move the staged file ``name`` (relative) to the same name in the output. A file
        already moved (staged copy gone, published one present) is done: a retried publish
        step repeats the moves its failed attempt made."""
        fs, output, staging = self.paths()
        staged, target = f"{staging}/{name}", f"{output}/{name}"
        if not fs.exists(staged) and fs.exists(target):
            return
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.mv(staged, target)


    def record_handed_over(self, name: str) -> None:
        """Note that the staged file ``name`` was handed to bundle finalization by a bundle
        that finished: ``finish_streaming`` fails the run if it is still in staging (an
        orphan of a failed bundle attempt is never noted, so it is told apart)."""
        fs, _, staging = self.paths()
        marker = f"{staging}/{HANDED_OVER}/{name}"
        fs.makedirs(marker.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(marker, b"")

    def handed_over(self) -> list[str]:
        """The names ``record_handed_over`` noted, relative to staging."""
        fs, _, staging = self.paths()
        root = f"{staging}/{HANDED_OVER}"
        return [path[len(root) + 1:] for path in fs.find(root)] if fs.isdir(root) else []


class BundleFileWriter(beam.DoFn):
    """Base class: subclasses say how to open, write to and close one file. Writes one file
    per bundle into ``<staging>/<subdir>/`` and emits its relative name when the bundle
    finishes (streaming: registers its publication with the bundle finalizer instead)."""

    suffix = ""
    counter_name = "records_written"

    def __init__(self, run_files: RunFiles, subdir: str = "") -> None:
        self._run_files = run_files
        self._subdir = subdir.strip("/")
        self._metrics = StepMetrics([self.counter_name])
        self._stream: BinaryIO | None = None

    def start_bundle(self) -> None:
        self._stream = None

    def process(self, element: Any, finalizer=beam.DoFn.BundleFinalizerParam,
                run_id: str | None = None) -> None:
        """``run_id``: the run's id as a side input (by keyword), made when the pipeline ran
        (``RunFiles.for_run``). It comes after ``finalizer``: Beam would pass the finalizer
        into a defaulted argument before it."""
        if self._stream is None:
            run_files = self._run_files.for_run(run_id)
            self._fs, _, staging = run_files.paths()
            directory = f"{staging}/{self._subdir}" if self._subdir else staging
            self._fs.makedirs(directory, exist_ok=True)
            file_name = f"part-{uuid.uuid4().hex}{self.suffix}"
            self._name = f"{self._subdir}/{file_name}" if self._subdir else file_name
            self._stream = self._fs.open(f"{directory}/{file_name}", "wb")
            self.open_file(self._stream)
            self._bundle_files = run_files
            if run_files.streaming:
                name = self._name
                finalizer.register(lambda: run_files.publish_file(name))
        self.write(element)
        self._metrics.inc(self.counter_name)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._stream is None:
            return
        self.close_file()
        self._stream.close()
        self._stream = None
        if self._bundle_files.streaming:
            self._bundle_files.record_handed_over(self._name)
        else:
            yield WindowedValue(self._name, GlobalWindow().max_timestamp(), (GlobalWindow(),))

    def teardown(self) -> None:
        if self._stream is not None:  # a failed bundle: its file is an orphan in staging
            try:
                self.close_file()  # before the stream, which the file's writer may still flush to
                self._stream.close()
            except Exception as error:
                LOG.warning("could not close %s: %s", self._name, error)

    def open_file(self, stream: BinaryIO) -> None:
        """Called once per file, before the first ``write``."""

    def write(self, element: Any) -> None:
        raise NotImplementedError

    def close_file(self) -> None:
        """Called once per file, before it is closed."""


def read_manifest(run_files: RunFiles) -> list[str]:
    """The relative names of the files committed by ``run_files``' run."""
    fs, _, staging = run_files.paths()
    with fs.open(f"{staging}/{MANIFEST}", "rt", encoding="utf-8") as stream:
        return json.load(stream)["files"]


class _WriteManifest(beam.DoFn):
    def __init__(self, run_files: RunFiles) -> None:
        self._run_files = run_files

    def process(self, names: list[str], run_id: str | None = None) -> Iterator[list[str]]:
        run_files = self._run_files.for_run(run_id)
        fs, _, staging = run_files.paths()
        fs.makedirs(staging, exist_ok=True)
        with fs.open(f"{staging}/{MANIFEST}", "wt", encoding="utf-8") as stream:
            json.dump({"run_id": run_files.run_id, "files": sorted(names)}, stream)
        yield sorted(names)


class CommitManifest(beam.PTransform):
    """Names of the files written by committed bundles -> ``<staging>/_manifest.json``.

    ``ToList`` is a global combine: it emits once, after every upstream bundle has
    committed, and an empty list when nothing was written, so a successful run always
    leaves a manifest. Rewriting it on a retry writes the same content. Its output is the
    manifest's names, once, for a step that publishes them in the pipeline. ``run_id``: a
    side input (``RunFiles.for_run``) for a run id made when the pipeline runs.
    """

    def __init__(self, run_files: RunFiles, run_id: Any = None) -> None:
        super().__init__()
        self._run_files = run_files
        self._run_id = run_id

    def expand(self, names):
        side = () if self._run_id is None else (self._run_id,)
        return (
            names
            | "GatherNames" >> beam.combiners.ToList()
            | "WriteManifest" >> beam.ParDo(_WriteManifest(self._run_files), *side)
        )
