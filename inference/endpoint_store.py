"""The one endpoint store every command reads: a user-level YAML file over the packaged endpoints.

``enrich serve`` writes the endpoints made with ``PUT _inference`` there, and ``enrich run``,
``infer``, ``endpoints`` and ``search`` read them from there, so an endpoint made over REST
can enrich a corpus without naming a file. Where it is::

    $ENRICH_HOME/endpoints.yaml                          when ENRICH_HOME is set
    $XDG_CONFIG_HOME/inference-enrich/endpoints.yaml     else (XDG_CONFIG_HOME: ~/.config)

The packaged endpoints (``configs/endpoints.yaml``) lie underneath: the file holds only
what differs from them (endpoints added, or packaged ones updated, which then shadow the
packaged ones by id), so a newer release's packaged endpoints still show. ``--endpoints
FILE`` on any command reads that file in the same way instead of the default store (for
``enrich serve`` it need not exist yet; for the others it must).

Several writers share one file (two ``enrich serve`` on the same store, a user editing it by
hand), so a change never rewrites the file from what one process holds in memory:
``change_endpoint`` takes an exclusive lock (``fcntl.flock`` on ``<file>.lock`` beside it,
left in place), reads the file as it is now, changes only the one endpoint it is about
(every other entry is written back as it was read) and replaces the file atomically
(temporary file + ``os.replace``), so a reader, which takes no lock, sees the old file or
the new one, never a torn one. A file that does not read or validate is not changed: the
error names it (``EndpointConfigError``) and the file stays as it is.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml

from inference_enrich.inference.endpoint_files import (
    EndpointRegistry,
    default_endpoints_path,
    parse_endpoints,
    parse_endpoints_yaml,
    read_endpoints_document,
    read_endpoints_file,
)
from inference_enrich.inference.endpoints import Endpoint
from inference_enrich.inference.errors import EndpointConfigError
from inference_enrich.inference.secrets import reveal

HOME_ENV = "ENRICH_HOME"
STORE_NAME = "endpoints.yaml"
HEADER = ("# Inference endpoints written by `enrich serve` (PUT/_update/DELETE _inference), over\n"
          "# the packaged ones (configs/endpoints.yaml); read by every `enrich` command.\n")


def store_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The default store's file (it need not exist)."""
    home = environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / STORE_NAME
    config = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(config) / "inference-enrich" / STORE_NAME


def packaged_endpoints() -> dict[str, Endpoint]:
    return {endpoint.inference_id: endpoint for endpoint in read_endpoints_file(default_endpoints_path())}


def read_overlay(path: Path, must_exist: bool = False) -> dict[str, Endpoint]:
    """The endpoints ``path`` holds (none when it holds ``endpoints: {}``, or does not exist
    and need not)."""
    return _read_entries(path, must_exist)[1]


def _read_entries(path: Path, must_exist: bool = False) -> tuple[dict[str, Any], dict[str, Endpoint]]:
    """``path``'s entries as written (id -> body) and as validated endpoints."""
    if not must_exist and not path.exists():
        return {}, {}
    return overlay_entries(read_endpoints_document(path), path)


def read_store_bytes(path: Path) -> bytes | None:
    """The store file's content, None when there is none (``parse_overlay`` reads it)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise EndpointConfigError(f"{path}: cannot read endpoints file: {error}") from error


def parse_overlay(content: bytes | None, path: Path) -> dict[str, Endpoint]:
    """``read_overlay`` of content ``read_store_bytes`` read from ``path``."""
    if content is None:
        return {}
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EndpointConfigError(f"{path}: cannot read endpoints file: {error}") from None
    return overlay_entries(parse_endpoints_yaml(text, path), path)[1]


def overlay_entries(document: Any, path: Path) -> tuple[dict[str, Any], dict[str, Endpoint]]:
    if document in ({"endpoints": {}}, {"endpoints": None}):  # every own endpoint deleted
        return {}, {}
    endpoints = {endpoint.inference_id: endpoint for endpoint in parse_endpoints(document, source=str(path))}
    return {str(key): body for key, body in document["endpoints"].items()}, endpoints


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """Exclusive use of the store ``path`` among every process (and thread) that takes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def change_endpoint(
    path: Path, inference_id: str, decide: Callable[[Endpoint | None], Endpoint | None]
) -> tuple[dict[str, Endpoint], bytes]:
    """Under the store's lock, set one endpoint of the store ``path`` on the file as it is now.

    ``decide`` gets the endpoint in effect now (the file's, else the packaged one, else None)
    and returns its new value (None: deleted from the file); it may raise to refuse, and then
    nothing is written. Every other entry is written back as it was read (an updated one
    keeps its place). Returns the endpoints in effect afterwards (packaged overlaid by the
    file) and the file's new content. Raises ``EndpointConfigError`` when the file does not
    read or validate, leaving it untouched."""
    packaged = packaged_endpoints()
    with store_lock(path):
        try:
            entries, overlay = _read_entries(path)
        except EndpointConfigError as error:
            raise EndpointConfigError(f"{error} (the endpoint store was not changed)") from None
        endpoint = decide(overlay.get(inference_id, packaged.get(inference_id)))
        if endpoint is not None and packaged.get(inference_id) != endpoint:
            entries[inference_id] = reveal(endpoint.to_body())
            overlay[inference_id] = endpoint
        else:  # deleted, or back to the packaged one, which then shows
            entries.pop(inference_id, None)
            overlay.pop(inference_id, None)
        text = _write_document(path, {"endpoints": entries})
        return {**packaged, **overlay}, text.encode("utf-8")


def load_store(path: str | Path | None = None, must_exist: bool | None = None) -> EndpointRegistry:
    """The packaged endpoints overlaid by ``path``'s (default: the store's, which need not
    exist; a file named explicitly must, unless ``must_exist`` says otherwise). The
    registry's ``source`` says where they come from, so "not found" names the file."""
    if must_exist is None:
        must_exist = path is not None
    path = Path(path) if path is not None else store_path()
    endpoints = {**packaged_endpoints(), **read_overlay(path, must_exist)}
    where = f"{path}{'' if path.exists() else ' (not written yet)'} over the packaged endpoints"
    return EndpointRegistry(endpoints, where)


def load_endpoints(path: str | Path | None = None) -> EndpointRegistry:
    """The endpoints every command reads: the packaged ones overlaid by ``path``'s (which
    must exist), or by the default store's when ``path`` is None."""
    return load_store(path)


def write_endpoints(path: Path, endpoints: Mapping[str, Endpoint], header: str = HEADER) -> None:
    """Write ``endpoints`` to ``path`` in the endpoints-file format, atomically (the whole
    file: a store shared with others is changed through ``change_endpoint``)."""
    _write_document(path, {"endpoints": {key: reveal(e.to_body()) for key, e in endpoints.items()}}, header)


def _write_document(path: Path, document: Mapping[str, Any], header: str = HEADER) -> str:
    # The file holds the credentials given in endpoint bodies, as the config file it replaces
    # did (mkstemp creates it readable by its owner only); GET leaves them out.
    text = header + yaml.safe_dump(dict(document), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
    return text
