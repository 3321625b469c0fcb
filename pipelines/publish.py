"""Publish a run's staged output once the pipeline has succeeded, as Hadoop/Spark output
committers do (see ``transforms/bundle_files.py`` for how files are staged).

A batch run's published output is ``part-*`` files, ``_dead_letter/part-*`` files and
``_SUCCESS``. ``publish_output``:

1. removes ``_SUCCESS``: until step 4 the directory is not a finished result;
2. when the run replaces the output (a files source), removes the earlier run's part files
   and dead letters (our names only; anything else in the directory is left alone);
3. moves exactly the files the run's manifest names into place;
4. writes ``_SUCCESS`` (a small JSON: run id, file count, time);
5. removes staging directories: this run's, with any orphans of retried bundles, and those
   left by killed runs (one run at a time per output directory).

Steps 1-4 are a few renames at the very end; a run killed or failed before them leaves the
earlier output exactly as it was.

Publishing is idempotent, because in ``publish: pipeline`` mode it is a pipeline step
(``PublishOutput``) that the runner may retry after any of those steps: step 2 spares the
files this run's manifest names (part names are unique per run), step 3 takes a file already
moved (staged copy gone, published copy present) as done, and once ``_SUCCESS`` names this
run only step 5 is left to finish.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Callable

import apache_beam as beam

from inference_enrich.transforms.bundle_files import STAGING_PREFIX, RunFiles, read_manifest
from inference_enrich.transforms.dead_letters import DEAD_LETTER_DIR

LOG = logging.getLogger(__name__)
SUCCESS = "_SUCCESS"
PART_PREFIX = "part-"


def new_run_id() -> str:
    """Sortable by start time, unique across concurrent launches."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def publish_output(run_files: RunFiles, replace: bool) -> int:
    """Publish the files the run committed (see module docstring); returns how many."""
    fs, output, _ = run_files.paths()
    published = _success_marker(fs, output)
    if published.get("run_id") == run_files.run_id:  # a repeated call that got past step 4
        _remove_staging(fs, output)
        return published["files"]
    names = read_manifest(run_files)
    if fs.exists(f"{output}/{SUCCESS}"):
        fs.rm(f"{output}/{SUCCESS}")
    if replace:
        ours = set(names)  # already moved here by an earlier attempt at this call
        for name in _published_parts(fs, output):
            if name not in ours:
                fs.rm(f"{output}/{name}")
    for name in names:
        run_files.publish_file(name)
    with fs.open(f"{output}/{SUCCESS}", "wt", encoding="utf-8") as stream:
        json.dump({"run_id": run_files.run_id, "files": len(names),
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, stream)
    _remove_staging(fs, output)
    return len(names)


def discard_staging(run_files: RunFiles) -> None:
    """After a failed run: drop what it staged (best effort; the output was never touched)."""
    fs, output, staging = run_files.paths()
    try:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
    except Exception as error:
        LOG.warning("could not remove the failed run's staging directory %s: %s", staging, error)


def finish_streaming(run_files: RunFiles) -> None:
    """After a streaming run: its committed bundles' files were published by bundle
    finalization; what is left in staging was never confirmed committed, so it is kept for
    inspection rather than published or deleted."""
    fs, _, staging = run_files.paths()
    left = fs.find(staging) if fs.exists(staging) else []
    if left:
        LOG.warning("%d file(s) in %s were not published: the runner did not confirm their "
                    "bundles (orphans of retried bundles, or a runner without bundle "
                    "finalization)", len(left), staging)
    elif fs.exists(staging):
        fs.rm(staging, recursive=True)


class PublishOutput(beam.DoFn):
    """Publishes the run's output inside the pipeline, once ``CommitManifest`` has written
    the manifest (its single output), then runs ``after_publish`` (committing the Kafka end
    offsets): for launchers that do not wait for the job, such as a Dataflow Flex Template's.
    A retried attempt finishes what an earlier one began (``publish_output`` is idempotent).
    It refuses to publish unless the records that reached the writers (output and dead
    letters) number exactly the records read: the in-pipeline form of ``run_job``'s check."""

    def __init__(self, run_files: RunFiles, replace: bool,
                 after_publish: Callable[[], None] | None = None) -> None:
        self._run_files = run_files
        self._replace = replace
        self._after_publish = after_publish

    def process(self, _manifest: Any, records_read: int, records_landed: int) -> None:
        if records_landed != records_read:
            raise RuntimeError(f"{records_read:,} records were read but {records_landed:,} reached "
                               "the output or the dead letters: nothing was published")
        count = publish_output(self._run_files, self._replace)
        LOG.info("published %d file(s) of run %s", count, self._run_files.run_id)
        if self._after_publish is not None:
            self._after_publish()


def _success_marker(fs, output: str) -> dict:
    """What ``_SUCCESS`` says (run id, file count), or {} when there is none to read."""
    try:
        with fs.open(f"{output}/{SUCCESS}", "rt", encoding="utf-8") as stream:
            marker = json.load(stream)
    except (FileNotFoundError, ValueError):  # none, or not ours (an older or torn write)
        return {}
    return marker if isinstance(marker, dict) else {}


def _published_parts(fs, output: str) -> list[str]:
    """The part files and dead letters in ``output``, as names relative to it."""
    parts = []
    for subdir in ("", f"{DEAD_LETTER_DIR}/"):
        directory = f"{output}/{subdir}".rstrip("/")
        if fs.isdir(directory):
            for path in fs.ls(directory, detail=False):
                name = path.rstrip("/").rsplit("/", 1)[-1]
                if name.startswith(PART_PREFIX):
                    parts.append(f"{subdir}{name}")
    return parts


def _remove_staging(fs, output: str) -> None:
    for path in fs.ls(output, detail=False):
        if path.rstrip("/").rsplit("/", 1)[-1].startswith(STAGING_PREFIX):
            fs.rm(path, recursive=True)
