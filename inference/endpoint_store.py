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
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import yaml

from inference_enrich.inference.endpoint_files import (
    EndpointRegistry,
    default_endpoints_path,
    parse_endpoints,
    read_endpoints_document,
    read_endpoints_file,
)
from inference_enrich.inference.endpoints import Endpoint
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
    if not must_exist and not path.exists():
        return {}
    document = read_endpoints_document(path)
    if document in ({"endpoints": {}}, {"endpoints": None}):  # every own endpoint deleted
        return {}
    return {endpoint.inference_id: endpoint for endpoint in parse_endpoints(document, source=str(path))}


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


def write_store(path: Path, endpoints: Mapping[str, Endpoint]) -> None:
    """Write what of ``endpoints`` differs from the packaged ones to ``path``, atomically."""
    packaged = packaged_endpoints()
    own = {key: endpoint for key, endpoint in endpoints.items() if packaged.get(key) != endpoint}
    write_endpoints(path, own)


def write_endpoints(path: Path, endpoints: Mapping[str, Endpoint], header: str = HEADER) -> None:
    """Write ``endpoints`` to ``path`` in the endpoints-file format, atomically."""
    # The file holds the credentials given in endpoint bodies, as the config file it replaces
    # did (mkstemp creates it readable by its owner only); GET leaves them out.
    document: dict[str, Any] = {"endpoints": {key: reveal(e.to_body()) for key, e in endpoints.items()}}
    text = header + yaml.safe_dump(document, sort_keys=False)
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
