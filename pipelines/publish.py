"""Publish a run's staged output once the pipeline has succeeded, as Hadoop/Spark output
committers do (see ``transforms/bundle_files.py`` for how files are staged).

A batch run's published output is ``part-*`` files, ``_dead_letter/part-*`` files and
``_SUCCESS``, which lists (``published``) every file enrich has published in the directory:
the only files a later run may remove. ``publish_output``:

1. plans the publication once, in the run's staging directory: this run's files (its
   manifest), the earlier enrich files to remove (those ``_SUCCESS`` lists, when the run
   replaces the output) and the new ``published`` list (when it adds to the output, the
   earlier files and its own);
2. removes ``_SUCCESS``: until step 5 the directory is not a finished result;
3. removes the earlier files the plan names (never a file enrich did not write);
4. moves exactly the files the run's manifest names into place;
5. writes ``_SUCCESS`` (a small JSON: run id, file count, ``published``, time);
6. removes the run's own staging directory (never another run's: see ``output_guard``).

Steps 2-5 are a few renames at the very end; a run killed or failed before them leaves the
earlier output exactly as it was.

Publishing is idempotent, because in ``publish: pipeline`` mode it is a pipeline step
(``PublishOutput``) that the runner may retry after any of those steps: a retry carries out
the plan step 1 kept (``_SUCCESS`` may be gone by then), step 4 takes a file already moved
(staged copy gone, published copy present) as done, and once ``_SUCCESS`` names this run
only step 6 is left to finish.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any, Callable

import apache_beam as beam

from inference_enrich.pipelines.errors import JobFailed
from inference_enrich.transforms.bundle_files import HANDED_OVER, MANIFEST, RunFiles, read_manifest
from inference_enrich.transforms.dead_letters import DEAD_LETTER_DIR

LOG = logging.getLogger(__name__)
SUCCESS = "_SUCCESS"
LOCK = ".enrich-lock.json"
"""The run that holds it writes to the output directory (``output_guard.OutputLock``)."""
PUBLISH_PLAN = "_publish.json"
OUR_PART = re.compile(r"^part-[0-9a-f]{32}(\.parquet|\.jsonl)?$")
"""The names ``BundleFileWriter`` gives its files (a uuid4 in hex): what a ``_SUCCESS``
written before it listed its files tells us is ours."""


def new_run_id() -> str:
    """Sortable by start time, unique across concurrent launches."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def publish_output(run_files: RunFiles, replace: bool) -> int:
    """Publish the files the run committed (see module docstring); returns how many."""
    fs, output, staging = run_files.paths()
    marker = success_marker(fs, output)
    if marker.get("run_id") == run_files.run_id and not _files_left_staged(run_files):
        _remove(fs, staging)  # a repeated call that got past step 5
        return marker["files"]
    names, remove, published = _plan(run_files, marker, replace)
    if fs.exists(f"{output}/{SUCCESS}"):
        fs.rm(f"{output}/{SUCCESS}")
    for name in remove:
        if fs.isfile(f"{output}/{name}"):
            fs.rm(f"{output}/{name}")
    for name in names:
        run_files.publish_file(name)
    with fs.open(f"{output}/{SUCCESS}", "wt", encoding="utf-8") as stream:
        json.dump({"run_id": run_files.run_id, "files": len(names), "published": published,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, stream)
    _remove(fs, staging)
    return len(names)


def _files_left_staged(run_files: RunFiles) -> bool:
    """Whether files the manifest names are still staged: a later run of a graph whose run id
    was fixed when it was built (only on our Dask runner), not a repeat of a finished publish."""
    fs, _, staging = run_files.paths()
    if not fs.exists(f"{staging}/{MANIFEST}"):
        return False
    return any(fs.exists(f"{staging}/{name}") for name in read_manifest(run_files))


def published_files(fs, output: str, marker: dict) -> list[str]:
    """The files earlier enrich runs published in ``output``, as ``_SUCCESS`` (``marker``)
    lists them. A ``_SUCCESS`` of a version that did not list them: the files with the names
    our writers give (``part-<32 hex digits>``), the only ones such a run can have written."""
    if isinstance(marker.get("published"), list):
        return [name for name in marker["published"] if _is_relative_name(name)]
    if "run_id" not in marker:
        return []
    return [name for name in _listing(fs, output) if OUR_PART.match(name.rsplit("/", 1)[-1])]


def _plan(run_files: RunFiles, marker: dict, replace: bool) -> tuple[list[str], list[str], list[str]]:
    """(this run's files, earlier enrich files to remove, every enrich file published after
    this run), decided once and kept in staging: a retried publish step, which may find
    ``_SUCCESS`` already removed, carries out the same plan."""
    fs, output, staging = run_files.paths()
    path = f"{staging}/{PUBLISH_PLAN}"
    if fs.exists(path):
        with fs.open(path, "rt", encoding="utf-8") as stream:
            plan = json.load(stream)
    else:
        names = read_manifest(run_files)
        listed = dict.fromkeys([*published_files(fs, output, marker), *_dead_letters_published(fs, output)])
        earlier = [name for name in listed if name not in names]
        nested_marker = f"{DEAD_LETTER_DIR}/{SUCCESS}"
        remove = [*earlier, *([nested_marker] if fs.isfile(f"{output}/{nested_marker}") else [])] \
            if replace else []
        kept = [] if replace else [name for name in earlier if fs.isfile(f"{output}/{name}")]
        plan = {"names": names, "remove": remove, "published": sorted({*kept, *names})}
        with fs.open(path, "wt", encoding="utf-8") as stream:
            json.dump(plan, stream)
    return plan["names"], plan["remove"], plan["published"]


def _dead_letters_published(fs, output: str) -> list[str]:
    """The files a public ``WriteDeadLetters(output)`` published, as its own
    ``_dead_letter/_SUCCESS`` lists them, relative to ``output``: a replacing run removes
    them (and that ``_SUCCESS``) as it does the files the top ``_SUCCESS`` lists."""
    directory = f"{output}/{DEAD_LETTER_DIR}"
    names = published_files(fs, directory, success_marker(fs, directory))
    return [f"{DEAD_LETTER_DIR}/{name}" for name in names if "/" not in name]


def _is_relative_name(name: object) -> bool:
    """A manifest entry that names a file inside the output (never one outside it)."""
    return isinstance(name, str) and bool(name) and not name.startswith("/") \
        and ".." not in name.split("/")


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
    finalization. A file a finished bundle handed to finalization (``record_handed_over``)
    that is still in staging was never published: the runner did not finalize its bundle,
    so the run fails (``JobFailed``), keeping the file. Other files left in staging are
    orphans of failed bundle attempts, kept for inspection. ``_SUCCESS`` then lists the
    files the run added (ours by name, absent from the earlier list), so that the output
    stays an enrich output whose files a later overwrite may replace."""
    fs, output, staging = run_files.paths()
    unmoved = [name for name in run_files.handed_over() if fs.exists(f"{staging}/{name}")]
    if unmoved:
        raise JobFailed(f"{len(unmoved)} file(s) of this run were never published (the runner did not "
                        f"finalize their bundles); they are in {run_files.staging}")
    left = [path for path in fs.find(staging) if f"/{HANDED_OVER}/" not in path] \
        if fs.exists(staging) else []
    if left:
        LOG.warning("%d file(s) in %s were not published: orphans of failed bundle attempts",
                    len(left), staging)
    elif fs.exists(staging):
        fs.rm(staging, recursive=True)
    earlier = published_files(fs, output, success_marker(fs, output))
    added = [name for name in _listing(fs, output)
             if OUR_PART.match(name.rsplit("/", 1)[-1]) and name not in earlier]
    if not added and fs.exists(f"{output}/{SUCCESS}"):
        return
    fs.makedirs(output, exist_ok=True)
    with fs.open(f"{output}/{SUCCESS}", "wt", encoding="utf-8") as stream:
        json.dump({"run_id": run_files.run_id, "files": len(added), "published": sorted({*earlier, *added}),
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, stream)


class PublishOutput(beam.DoFn):
    """Publishes the run's output inside the pipeline, once ``CommitManifest`` has written
    the manifest (its single output), then runs ``after_publish`` (committing the Kafka end
    offsets) and releases the run's lock on the output: for launchers that do not wait for
    the job, such as a Dataflow Flex Template's. A retried attempt finishes what an earlier
    one began (``publish_output`` is idempotent). It refuses to publish unless the records
    that reached the writers (output and dead letters) number exactly the records read, and
    the share of dead letters is within ``max_dead_letter_ratio``: the in-pipeline form of
    ``run_job``'s checks."""

    def __init__(self, run_files: RunFiles, replace: bool,
                 after_publish: Callable[[], None] | None = None, max_dead_letter_ratio: float = 1.0,
                 describe: Callable[[list], str] | None = None) -> None:
        self._run_files = run_files
        self._replace = replace
        self._after_publish = after_publish
        self._max_ratio = max_dead_letter_ratio
        self._describe = describe

    def process(self, _manifest: Any, records_read: int, records_landed: int, dead_letters: int = 0,
                digest: list | None = None) -> None:
        if records_landed != records_read:
            raise RuntimeError(f"{records_read:,} records were read but {records_landed:,} reached "
                               "the output or the dead letters: nothing was published")
        described = self._describe(digest or []) if self._describe is not None else ""
        problem = dead_letter_problem(records_read, dead_letters, self._max_ratio, described)
        if problem:
            raise RuntimeError(f"{problem}: nothing was published")
        count = publish_output(self._run_files, self._replace)
        LOG.info("published %d file(s) of run %s", count, self._run_files.run_id)
        if self._after_publish is not None:
            self._after_publish()
        fs, output, _ = self._run_files.paths()
        release_lock(fs, output, self._run_files.run_id)


def release_lock(fs, output: str, run_id: str) -> None:
    """Remove ``output``'s lock if ``run_id`` holds it (the pipeline's publish step calls
    this too, so a launcher that does not wait leaves no lock behind)."""
    path = f"{output}/{LOCK}"
    try:
        holder = json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return
    if isinstance(holder, dict) and holder.get("run_id") == run_id:
        try:
            fs.rm(path)
        except FileNotFoundError:
            pass


def dead_letter_problem(read: int, dead: int, max_ratio: float, digest: str) -> str | None:
    """Why a run whose share of dead letters exceeds ``max_ratio`` fails, in one line, or None."""
    if not read or dead <= max_ratio * read:
        return None
    return (f"{dead:,} of {read:,} records ({dead / read:.0%}) were dead-lettered, more than "
            f"--max-dead-letter-ratio {max_ratio:g}" + (f"; {digest}" if digest else ""))


def success_marker(fs, output: str) -> dict:
    """What ``_SUCCESS`` says (run id, file count, published files), or {} when there is
    none, or it is not ours (Spark's is empty)."""
    try:
        with fs.open(f"{output}/{SUCCESS}", "rt", encoding="utf-8") as stream:
            marker = json.load(stream)
    except (FileNotFoundError, ValueError):  # none, or not ours (an older or torn write)
        return {}
    return marker if isinstance(marker, dict) else {}


def _listing(fs, output: str) -> list[str]:
    """The files in ``output`` and in its dead-letter directory, as names relative to it."""
    names = []
    for subdir in ("", f"{DEAD_LETTER_DIR}/"):
        directory = f"{output}/{subdir}".rstrip("/")
        if fs.isdir(directory):
            for path in fs.ls(directory, detail=False):
                if fs.isfile(path):
                    names.append(f"{subdir}{path.rstrip('/').rsplit('/', 1)[-1]}")
    return names


def _remove(fs, directory: str) -> None:
    if fs.exists(directory):
        fs.rm(directory, recursive=True)
