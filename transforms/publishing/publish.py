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
import time
import uuid

from inference_enrich.transforms.bundle_files import HANDED_OVER, MANIFEST, RunFiles, read_manifest
from inference_enrich.transforms.publishing.output_dir import (
    DEAD_LETTER_DIR, LOCK, PUBLISH_PLAN, SUCCESS, is_ours, output_files, published_files, read_lock,
    success_marker, write_success,
)

LOG = logging.getLogger(__name__)


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
    write_success(fs, output, run_files.run_id, len(names), published)
    _remove(fs, staging)
    return len(names)


def _files_left_staged(run_files: RunFiles) -> bool:
    """Whether files the manifest names are still staged: a later run of a graph whose run id
    was fixed when it was built (only on our Dask runner), not a repeat of a finished publish."""
    fs, _, staging = run_files.paths()
    if not fs.exists(f"{staging}/{MANIFEST}"):
        return False
    return any(fs.exists(f"{staging}/{name}") for name in read_manifest(run_files))


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


def discard_staging(run_files: RunFiles) -> None:
    """After a failed run: drop what it staged (best effort; the output was never touched)."""
    fs, output, staging = run_files.paths()
    try:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
    except Exception as error:
        LOG.warning("could not remove the failed run's staging directory %s: %s", staging, error)


class UnpublishedFiles(RuntimeError):
    """Files a streaming run handed to bundle finalization were never published: the run
    failed (the launcher reports it as ``JobFailed``)."""


def finish_streaming(run_files: RunFiles) -> None:
    """After a streaming run: its committed bundles' files were published by bundle
    finalization. A file a finished bundle handed to finalization (``record_handed_over``)
    that is still in staging was never published: the runner did not finalize its bundle,
    so the run fails (``UnpublishedFiles``), keeping the file. Other files left in staging are
    orphans of failed bundle attempts, kept for inspection. ``_SUCCESS`` then lists the
    files the run added (ours by name, absent from the earlier list), so that the output
    stays an enrich output whose files a later overwrite may replace."""
    fs, output, staging = run_files.paths()
    unmoved = [name for name in run_files.handed_over() if fs.exists(f"{staging}/{name}")]
    if unmoved:
        raise UnpublishedFiles(f"{len(unmoved)} file(s) of this run were never published (the runner did not "
                        f"finalize their bundles); they are in {run_files.staging}")
    left = [path for path in fs.find(staging) if f"/{HANDED_OVER}/" not in path] \
        if fs.exists(staging) else []
    if left:
        LOG.warning("%d file(s) in %s were not published: orphans of failed bundle attempts",
                    len(left), staging)
    elif fs.exists(staging):
        fs.rm(staging, recursive=True)
    earlier = published_files(fs, output, success_marker(fs, output))
    added = [name for name in output_files(fs, output) if is_ours(name) and name not in earlier]
    if not added and fs.exists(f"{output}/{SUCCESS}"):
        return
    fs.makedirs(output, exist_ok=True)
    write_success(fs, output, run_files.run_id, len(added), sorted({*earlier, *added}))


def release_lock(fs, output: str, run_id: str) -> None:
    """Remove ``output``'s lock if ``run_id`` holds it (the pipeline's publish step calls
    this too, so a launcher that does not wait leaves no lock behind)."""
    holder = read_lock(fs, output)
    if holder is not None and holder.get("run_id") == run_id:
        try:
            fs.rm(f"{output}/{LOCK}")
        except FileNotFoundError:
            pass


def _remove(fs, directory: str) -> None:
    if fs.exists(directory):
        fs.rm(directory, recursive=True)
