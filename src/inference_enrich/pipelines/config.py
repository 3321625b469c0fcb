"""The job configuration: YAML file and command-line flags, merged and validated.

A config file has three sections (every key optional; flags given on the command line win)::

    source:
      input: data/*.jsonl.gz         # fsspec URL(s), globs or directories; a list is fine
      format: jsonl                  # jsonl | json | csv | parquet | text (default: by extension)
    inference:
      endpoints: endpoints.yaml      # endpoint definitions (default: the packaged ones)
      inference_id: my-elser-model
      text_field: text
      id_field: id
      output_field: embedding
      max_batch_tokens: 8192
      max_batch_size: 64
      num_threads: 2                 # torch threads per worker (default: torch's choice)
    sink:
      output: ./enrich-output        # any fsspec URL

Relative local paths in a config file are relative to that file's directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inference_enrich.inference.errors import InferenceEnrichError
from inference_enrich.transforms.formats import FORMATS


class JobConfigError(InferenceEnrichError):
    """An invalid job configuration; the message names the file and the key."""


def sample_corpus_path() -> str:
    """The bundled sample corpus (public-domain English text, see its LICENSE.md)."""
    return str(resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl")


@dataclass
class JobConfig:
    """Everything a run needs besides Beam's own pipeline options."""

    input: list[str] = field(default_factory=lambda: [sample_corpus_path()])
    format: str | None = None
    endpoints: str | None = None
    inference_id: str = "my-elser-model"
    text_field: str = "text"
    id_field: str = "id"
    output_field: str = "embedding"
    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    num_threads: int | None = None
    output: str = "enrich-output"

    def __post_init__(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]


# section -> key -> expected Python type(s)
SECTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "source": {"input": (str, list), "format": (str,)},
    "inference": {
        "endpoints": (str,),
        "inference_id": (str,),
        "text_field": (str,),
        "id_field": (str,),
        "output_field": (str,),
        "max_batch_tokens": (int,),
        "max_batch_size": (int,),
        "num_threads": (int,),
    },
    "sink": {"output": (str,)},
}
PATH_KEYS = ("input", "endpoints", "output")


def load_job_config(path: str | Path | None, overrides: dict[str, Any]) -> JobConfig:
    """Defaults, then the config file (if any), then ``overrides`` (flags that were given)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_config_file(Path(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = JobConfig(**values)
    _validate(config, str(path) if path else "command line")
    return config


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise JobConfigError(f"{path}: cannot read config file: {error}") from error
    except yaml.YAMLError as error:
        raise JobConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise JobConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    values: dict[str, Any] = {}
    for section, body in document.items():
        if section not in SECTIONS:
            raise JobConfigError(f"{path}: unknown section '{section}' (known: {', '.join(SECTIONS)})")
        if not isinstance(body, dict):
            raise JobConfigError(f"{path}: {section}: expected a mapping")
        for key, value in body.items():
            expected = SECTIONS[section].get(key)
            if expected is None:
                known = ", ".join(SECTIONS[section])
                raise JobConfigError(f"{path}: {section}.{key}: unknown key (known: {known})")
            if not isinstance(value, expected) or isinstance(value, bool):
                names = " or ".join(t.__name__ for t in expected)
                raise JobConfigError(f"{path}: {section}.{key}: expected {names}, got {value!r}")
            values[key] = _resolve_paths(value, path.parent) if key in PATH_KEYS else value
    return values


def _resolve_paths(value: str | list[str], base: Path) -> str | list[str]:
    if isinstance(value, list):
        return [_resolve_path(str(v), base) for v in value]
    return _resolve_path(value, base)


def _resolve_path(value: str, base: Path) -> str:
    if "://" in value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _validate(config: JobConfig, origin: str) -> None:
    def fail(key: str, problem: str) -> JobConfigError:
        return JobConfigError(f"{origin}: {key}: {problem}")

    if not config.input:
        raise fail("input", "at least one input URL or glob is required")
    if config.format is not None and config.format not in FORMATS:
        raise fail("format", f"unknown format '{config.format}' (known: {', '.join(FORMATS)})")
    for key in ("max_batch_tokens", "max_batch_size"):
        if getattr(config, key) < 1:
            raise fail(key, "must be a positive integer")
    if config.num_threads is not None and config.num_threads < 1:
        raise fail("num_threads", "must be a positive integer")
    for key in ("text_field", "id_field", "output_field", "inference_id", "output"):
        if not getattr(config, key):
            raise fail(key, "must not be empty")
