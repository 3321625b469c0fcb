"""Endpoints YAML files (``configs/endpoints.yaml``, ``--endpoints FILE``): read and validate
one, and the registry of its endpoints by inference id (``endpoint_store.py`` overlays them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from inference_enrich.inference.endpoints import Endpoint
from inference_enrich.inference.errors import EndpointConfigError, UnknownEndpointError
from inference_enrich.inference.validation import yaml_problem


class EndpointRegistry:
    """The endpoints of one configuration file, looked up by inference id."""

    def __init__(self, endpoints: Mapping[str, Endpoint], source: str) -> None:
        self._endpoints = dict(endpoints)
        self.source = source

    def __iter__(self):
        return iter(self._endpoints.values())

    def __len__(self) -> int:
        return len(self._endpoints)

    def get(self, inference_id: str, task_type: str | None = None) -> Endpoint:
        """The endpoint called ``inference_id``; checks ``task_type`` when one is given."""
        try:
            endpoint = self._endpoints[inference_id]
        except KeyError:
            known = ", ".join(sorted(self._endpoints)) or "none"
            raise UnknownEndpointError(
                f"Inference endpoint not found [{inference_id}] in {self.source} "
                f"(configured: {known})"
            ) from None
        if task_type is not None:
            endpoint.require_task_type(task_type)
        return endpoint


def default_endpoints_path() -> Path:
    """The endpoints file that ships with the package (``configs/endpoints.yaml``)."""
    return Path(str(resources.files("inference_enrich.configs") / "endpoints.yaml"))


def read_endpoints_file(path: str | Path) -> EndpointRegistry:
    """Read and validate one endpoints YAML file, alone."""
    return parse_endpoints(read_endpoints_document(Path(path)), source=str(path))


def read_endpoints_document(path: Path) -> Any:
    """An endpoints file's YAML, parsed but not validated; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EndpointConfigError(f"{path}: cannot read endpoints file: {error}") from error
    return parse_endpoints_yaml(text, path)


def parse_endpoints_yaml(text: str, path: Path) -> Any:
    """An endpoints file's text (read from ``path``), parsed but not validated."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EndpointConfigError(f"{path}: not valid YAML: {yaml_problem(error)}") from None


def parse_endpoints(document: Any, source: str) -> EndpointRegistry:
    """Validate an already-parsed endpoints document; ``source`` names it in errors."""
    if not isinstance(document, dict) or set(document) != {"endpoints"}:
        raise EndpointConfigError(f"{source}: expected a single top-level key 'endpoints'")
    entries = document["endpoints"]
    if not isinstance(entries, dict) or not entries:
        raise EndpointConfigError(f"{source}: 'endpoints' must map inference ids to endpoints")
    endpoints = {
        str(inference_id): Endpoint.from_body(str(inference_id), body, source=source)
        for inference_id, body in entries.items()
    }
    return EndpointRegistry(endpoints, source)
