"""Which files an input pattern stands for: matched at run time, checked cheaply at launch.

A job graph that lists every input file grows with the file count (Dataflow refuses requests
over its size limit) and misses files that arrive between launch and run. So the graph holds
only the patterns, and ``MatchFiles`` (a DoFn, as Beam's ``fileio.MatchAll``) expands them on a
worker. At launch ``require_matches`` only asks whether each pattern matches at least one
file, stopping at the first it finds, so that a typo still fails at once without a listing.

Rules (the same at launch and at run time): a glob or a file name matches files (never
directories); a directory stands for the files under it whose extension names a format,
except those under a name starting with ``.`` or ``_`` (``_SUCCESS``, ``.staging-*``).
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple, Sequence

import apache_beam as beam
import fsspec
from fsspec.core import has_magic
from fsspec.utils import glob_translate

from inference_enrich.transforms.formats import format_of
from inference_enrich.transforms.publishing.output_dir import is_hidden


class MatchedFile(NamedTuple):
    """A file URL and its size in bytes (None when the filesystem does not say)."""

    url: str
    size: int | None


def match_pattern(pattern: str) -> Iterator[MatchedFile]:
    """Every file ``pattern`` stands for, in sorted order (a full listing: run time only)."""
    fs, path = fsspec.core.url_to_fs(pattern)
    if _is_directory(fs, path):
        found = {p: info for p, info in fs.find(path, detail=True).items()
                 if not is_hidden(p[len(path):]) and _known_format(p)}
    else:
        found = {p: info for p, info in fs.glob(path, detail=True).items() if info.get("type") != "directory"}
    for p in sorted(found):
        size = found[p].get("size")
        yield MatchedFile(fs.unstrip_protocol(p), int(size) if size is not None else None)


def first_match(pattern: str) -> str | None:
    """A file ``pattern`` stands for, or None: walks directories lazily and stops at the first
    match, so a pattern over a million files costs one listing page, not a million names."""
    fs, path = fsspec.core.url_to_fs(pattern)
    if _is_directory(fs, path):
        for directory, subdirectories, files in fs.walk(path):
            subdirectories[:] = [d for d in subdirectories if not is_hidden(d)]
            for name in sorted(files):
                if not is_hidden(name) and _known_format(name):
                    return fs.unstrip_protocol(f"{directory.rstrip('/')}/{name}")
        return None
    if not has_magic(path):
        return fs.unstrip_protocol(path) if fs.isfile(path) else None
    root, depth = _glob_root(path)
    regex = re.compile(glob_translate(path))
    for directory, _, files in fs.walk(root, maxdepth=depth):
        for name in sorted(files):
            candidate = f"{directory.rstrip('/')}/{name}"
            if regex.match(candidate):
                return fs.unstrip_protocol(candidate)
    return None


def require_matches(patterns: Sequence[str]) -> None:
    """Raise ``FileNotFoundError`` naming the first pattern that matches no file."""
    if not patterns:
        raise ValueError("no input given")
    for pattern in patterns:
        if first_match(pattern) is None:
            raise FileNotFoundError(f"no input files match '{pattern}'")


class MatchFiles(beam.DoFn):
    """The input patterns -> their ``MatchedFile``s, listed when the pipeline runs.

    All patterns come as one element so that a file two patterns match (``--input DIR`` and
    ``--input 'DIR/a*.jsonl'``) is read once: its records are enriched and published once.
    A pattern that matched at launch but matches nothing now (its files were removed) fails
    the bundle naming it: an empty input is never a silent success."""

    def process(self, patterns: Sequence[str]) -> Iterator[MatchedFile]:
        seen: set[str] = set()
        for pattern in patterns:
            matched = False
            for found in match_pattern(pattern):
                matched = True
                if found.url not in seen:
                    seen.add(found.url)
                    yield found
            if not matched:
                raise FileNotFoundError(f"no input files match '{pattern}' (when the pipeline ran)")


def _is_directory(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    # A name with a format extension is a file: asking an http:// URL whether it is a
    # directory would download it to look for links.
    return not has_magic(path) and not _known_format(path) and fs.isdir(path)


def _glob_root(path: str) -> tuple[str, int | None]:
    """The directory a glob starts from and how deep below it it reaches (None: ``**``),
    as fsspec's own ``glob`` computes them, so both find the same files."""
    first_magic = min(i for i in (path.find("*"), path.find("?"), path.find("["), len(path)) if i >= 0)
    slash = path.rfind("/", 0, first_magic)
    root = path[: slash + 1] if slash >= 0 else ""
    depth = None if "**" in path else path[slash + 1 :].count("/") + 1
    return root, depth


def _known_format(path: str) -> bool:
    try:
        format_of(path)
    except ValueError:
        return False
    return True
