"""Inference endpoints: the YAML mirror of Elasticsearch's create-endpoint body.

``PUT _inference/<task_type>/<inference_id>`` takes ``service``, ``service_settings`` and
``task_settings``; ``configs/endpoints.yaml`` holds the same body per inference id::

    endpoints:
      my-elser-model:
        task_type: sparse_embedding
        service: transformers
        service_settings: {model_id: splade-tiny, max_sequence_length: 512}
        task_settings: {top_k: 100}

Everything is validated when the file is loaded, so a typo fails at start-up with the file,
the endpoint and the key in the message, not hours into a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from inference_enrich.inference.errors import (
    EndpointConfigError,
    IncompatibleTaskTypeError,
    UnknownEndpointError,
)
from inference_enrich.inference.models import BUILT_IN_MODELS, is_known_model_id
from inference_enrich.inference.results import SPARSE_EMBEDDING, TASK_TYPES, TEXT_EMBEDDING

SERVICES: dict[str, tuple[str, ...]] = {"transformers": TASK_TYPES}
"""service name -> the task types it can serve."""

ENDPOINT_KEYS = ("task_type", "service", "service_settings", "task_settings")


@dataclass(frozen=True)
class SettingSpec:
    """One allowed setting: its type check, a description of valid values, and if required."""

    check: Callable[[Any], bool]
    expected: str
    required: bool = False


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


SERVICE_SETTINGS: dict[str, SettingSpec] = {
    "model_id": SettingSpec(
        _non_empty_string,
        f"a built-in alias ({', '.join(sorted(BUILT_IN_MODELS))}), a local directory or a hub id",
        required=True,
    ),
    "max_sequence_length": SettingSpec(
        lambda v: _positive_int(v) and v >= 2, "an integer >= 2 (tokens, special tokens included)"
    ),
    "quantization": SettingSpec(
        lambda v: v in ("none", "int8"),
        "'none' (exact, the default) or 'int8' (sparse_embedding only: faster, approximate)",
    ),
}

TASK_SETTINGS: dict[str, dict[str, SettingSpec]] = {
    SPARSE_EMBEDDING: {
        "top_k": SettingSpec(_positive_int, "a positive integer (keep the k highest weights)"),
        "min_weight": SettingSpec(_non_negative_number, "a number >= 0 (drop smaller weights)"),
    },
    TEXT_EMBEDDING: {},
}


@dataclass(frozen=True)
class Endpoint:
    """One configured inference endpoint (validated)."""

    inference_id: str
    task_type: str
    service: str
    service_settings: Mapping[str, Any]
    task_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.service_settings["model_id"]

    def require_task_type(self, task_type: str) -> None:
        """Raise as Elasticsearch does when asked for a task type this endpoint does not do."""
        if task_type != self.task_type:
            raise IncompatibleTaskTypeError(requested=task_type, actual=self.task_type)


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


def load_endpoints(path: str | Path | None = None) -> EndpointRegistry:
    """Read and validate an endpoints YAML file (the packaged one when ``path`` is None)."""
    path = Path(path) if path is not None else default_endpoints_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EndpointConfigError(f"{path}: cannot read endpoints file: {error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EndpointConfigError(f"{path}: not valid YAML: {error}") from error
    return parse_endpoints(document, source=str(path))


def parse_endpoints(document: Any, source: str) -> EndpointRegistry:
    """Validate an already-parsed endpoints document; ``source`` names it in errors."""
    if not isinstance(document, dict) or set(document) != {"endpoints"}:
        raise EndpointConfigError(f"{source}: expected a single top-level key 'endpoints'")
    entries = document["endpoints"]
    if not isinstance(entries, dict) or not entries:
        raise EndpointConfigError(f"{source}: 'endpoints' must map inference ids to endpoints")
    endpoints = {}
    for inference_id, body in entries.items():
        endpoints[str(inference_id)] = _parse_endpoint(str(inference_id), body, source)
    return EndpointRegistry(endpoints, source)


def _parse_endpoint(inference_id: str, body: Any, source: str) -> Endpoint:
    def fail(key: str, problem: str) -> EndpointConfigError:
        return EndpointConfigError(f"{source}: endpoint '{inference_id}': {key}: {problem}")

    if not isinstance(body, dict):
        raise fail("(body)", "must be a mapping with " + ", ".join(ENDPOINT_KEYS))
    for key in body:
        if key not in ENDPOINT_KEYS:
            raise fail(str(key), f"unknown key (allowed: {', '.join(ENDPOINT_KEYS)})")
    for key in ("task_type", "service", "service_settings"):
        if key not in body:
            raise fail(key, "required")

    task_type, service = body["task_type"], body["service"]
    if task_type not in TASK_TYPES:
        raise fail("task_type", f"unknown task type '{task_type}' (known: {', '.join(TASK_TYPES)})")
    if service not in SERVICES:
        raise fail("service", f"unknown service '{service}' (known: {', '.join(SERVICES)})")
    if task_type not in SERVICES[service]:
        raise fail("task_type", f"service '{service}' cannot do '{task_type}'")

    service_settings = _check_settings(
        body["service_settings"], SERVICE_SETTINGS, "service_settings", fail
    )
    model_id = service_settings["model_id"]
    if not is_known_model_id(model_id):
        raise fail(
            "service_settings.model_id",
            f"unknown model '{model_id}' (expected {SERVICE_SETTINGS['model_id'].expected})",
        )
    if service_settings.get("quantization", "none") != "none" and task_type != SPARSE_EMBEDDING:
        raise fail("service_settings.quantization", f"only 'none' is available for {task_type}")
    task_settings = _check_settings(
        body.get("task_settings") or {}, TASK_SETTINGS[task_type], "task_settings", fail
    )
    return Endpoint(inference_id, task_type, service, service_settings, task_settings)


def _check_settings(
    settings: Any,
    specs: Mapping[str, SettingSpec],
    section: str,
    fail: Callable[[str, str], EndpointConfigError],
) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise fail(section, "must be a mapping")
    for key, value in settings.items():
        spec = specs.get(key)
        if spec is None:
            allowed = ", ".join(specs) or "none for this task type"
            raise fail(f"{section}.{key}", f"unknown key (allowed: {allowed})")
        if not spec.check(value):
            raise fail(f"{section}.{key}", f"expected {spec.expected}, got {value!r}")
    for key, spec in specs.items():
        if spec.required and key not in settings:
            raise fail(f"{section}.{key}", "required")
    return dict(settings)
