"""What an enrich output directory holds, read in one place: its entries, its published
files, its ``_SUCCESS`` and its lock file (Beam-free; the publisher, the save modes and the
lock all read the directory through this module).

An output directory holds ``part-*`` files, ``_dead_letter/part-*`` files and ``_SUCCESS``
(a small JSON: run id, file count, ``published``, time), and while a run writes, that run's
lock (``.enrich-lock.json``) and staging directories (``.staging-<run id>/``). Names that
start with ``.`` or ``_`` are not data: readers (``pyarrow.dataset``, ``match_files``) skip
them (``is_hidden``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

SUCCESS = "_SUCCESS"
LOCK = ".enrich-lock.json"
"""The run that holds it writes to the output directory (``output_guard.OutputLock``)."""
PUBLISH_PLAN = "_publish.json"
DEAD_LETTER_DIR = "_dead_letter"
OUR_PART = re.compile(r"^part-[0-9a-f]{32}(\.parquet|\.jsonl)?$")
"""The names ``BundleFileWriter`` gives its files (a uuid4 in hex): what a ``_SUCCESS``
written before it listed its files tells us is ours."""


def is_hidden(relative: str) -> bool:
    """Whether a path relative to a directory passes through a name that is not data
    (``_SUCCESS``, ``_dead_letter/``, ``.staging-*``, the lock)."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def entries(fs: Any, directory: str) -> list[str]:
    """The names of what ``directory`` holds (files and directories); [] when it is none."""
    if not fs.isdir(directory):
        return []
    return [path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(directory, detail=False)]


def output_files(fs: Any, output: str) -> list[str]:
    """The files in ``output`` and in its dead-letter directory, as names relative to it."""
    names = []
    for subdir in ("", f"{DEAD_LETTER_DIR}/"):
        directory = f"{output}/{subdir}".rstrip("/")
        names += [f"{subdir}{name}" for name in entries(fs, directory) if fs.isfile(f"{directory}/{name}")]
    return names


def success_marker(fs: Any, output: str) -> dict:
    """What ``_SUCCESS`` says (run id, file count, published files), or {} when there is
    none, or it is not ours (Spark's is empty)."""
    try:
        with fs.open(f"{output}/{SUCCESS}", "rt", encoding="utf-8") as stream:
            marker = json.load(stream)
    except (FileNotFoundError, ValueError):  # none, or not ours (an older or torn write)
        return {}
    return marker if isinstance(marker, dict) else {}


def write_success(fs: Any, output: str, run_id: str, files: int, published: list[str]) -> None:
    """Write ``_SUCCESS``: the run, how many files it published, and every file enrich has
    published in ``output`` (the only files a later run may remove)."""
    with fs.open(f"{output}/{SUCCESS}", "wt", encoding="utf-8") as stream:
        json.dump({"run_id": run_id, "files": files, "published": published,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, stream)


def published_files(fs: Any, output: str, marker: dict) -> list[str]:
    """The files earlier enrich runs published in ``output``, as ``_SUCCESS`` (``marker``)
    lists them. A ``_SUCCESS`` of a version that did not list them: the files with the names
    our writers give (``part-<32 hex digits>``), the only ones such a run can have written."""
    if isinstance(marker.get("published"), list):
        return [name for name in marker["published"] if _is_relative_name(name)]
    if "run_id" not in marker:
        return []
    return [name for name in output_files(fs, output) if is_ours(name)]


def is_ours(name: str) -> bool:
    """Whether a file's name is one our writers give."""
    return bool(OUR_PART.match(name.rsplit("/", 1)[-1]))


def read_lock(fs: Any, output: str) -> dict | None:
    """What ``output``'s lock file says (run id, host, pid, heartbeat, lease), or None when
    there is none or it cannot be read (a torn write)."""
    try:
        holder = json.loads(fs.cat_file(f"{output}/{LOCK}"))
    except (FileNotFoundError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _is_relative_name(name: object) -> bool:
    """A manifest entry that names a file inside the output (never one outside it)."""
    return isinstance(name, str) and bool(name) and not name.startswith("/") \
        and ".." not in name.split("/")
