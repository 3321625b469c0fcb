"""The job configuration: YAML file and command-line flags, merged and validated.

A config file has three sections (every key optional; flags given on the command line win)::

    source:
      type: files                    # files | kafka
      input: data/*.jsonl.gz         # fsspec URL(s), globs or directories; a list is fine
      format: jsonl                  # jsonl | json | csv | parquet | text (default: by extension)
      kafka_bootstrap: 127.0.0.1:9092
      kafka_topic: [docs]            # one topic or a list
      kafka_group: inference-enrich  # consumer group whose offsets are read and committed
      kafka_auto_offset_reset: earliest   # where a partition without a committed offset starts
      kafka_reader: python           # python (ours, any runner) | beam (Java, streaming only)
      kafka_config: {}               # passed to confluent-kafka: security.protocol, sasl.*, ...
      streaming: false               # unbounded read; offsets committed per finished bundle
      stop_after_records: 1000       # streaming: stop after N records (per worker process)
      stop_after_seconds: 60         # streaming: stop after T seconds
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
      type: parquet                  # parquet | elasticsearch | opensearch | embedded
      output: ./enrich-output        # Parquet (and, for every sink, dead letters); fsspec URL
      url: http://127.0.0.1:9200     # elasticsearch / opensearch
      index: enriched                # elasticsearch / opensearch index name
      path: ./idx                    # the embedded index directory (type: embedded)
      api_key: ...                   # or ES_API_KEY in the environment (preferred)
      username: elastic              # or ES_USERNAME / OPENSEARCH_USERNAME
      password: ...                  # or ES_PASSWORD / OPENSEARCH_PASSWORD (preferred)
      ca_certs: /path/to/ca.pem
      verify_certs: true

Relative local paths in a config file are relative to that file's directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inference_enrich.indexes.settings import INDEX_SINKS, SINK_ALIASES, IndexSettings
from inference_enrich.inference.errors import InferenceEnrichError
from inference_enrich.transforms.kafka import KafkaSettings
from inference_enrich.transforms.formats import FORMATS


class JobConfigError(InferenceEnrichError):
    """An invalid job configuration; the message names the file and the key."""


def sample_corpus_path() -> str:
    """The bundled sample corpus (public-domain English text, see its LICENSE.md)."""
    return str(resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl")


@dataclass
class JobConfig:
    """Everything a run needs besides Beam's own pipeline options."""

    source: str = "files"
    input: list[str] = field(default_factory=lambda: [sample_corpus_path()])
    format: str | None = None
    kafka_bootstrap: str | None = None
    kafka_topic: list[str] = field(default_factory=list)
    kafka_group: str = "inference-enrich"
    kafka_auto_offset_reset: str = "earliest"
    kafka_reader: str = "python"
    kafka_config: dict[str, Any] = field(default_factory=dict)
    streaming: bool = False
    stop_after_records: int | None = None
    stop_after_seconds: float | None = None
    endpoints: str | None = None
    inference_id: str = "my-elser-model"
    text_field: str = "text"
    id_field: str = "id"
    output_field: str = "embedding"
    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    num_threads: int | None = None
    output: str = "enrich-output"
    sink: str = "parquet"
    es_url: str | None = None
    index: str = "enriched"
    index_path: str | None = None
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True

    def __repr__(self) -> str:  # never print secrets
        hidden = {"api_key", "password", "kafka_config"}
        shown = ", ".join(
            f"{f.name}={'***' if f.name in hidden and getattr(self, f.name) else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"JobConfig({shown})"

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=self.kafka_bootstrap or "", topics=tuple(self.kafka_topic),
            group=self.kafka_group, auto_offset_reset=self.kafka_auto_offset_reset,
            client_config=dict(self.kafka_config), streaming=self.streaming,
            stop_after_records=self.stop_after_records,
            stop_after_seconds=self.stop_after_seconds, reader=self.kafka_reader,
        )

    def index_settings(self) -> IndexSettings:
        """Where the index sink writes (for ``sink`` other than parquet)."""
        return IndexSettings(
            kind=self.sink, url=self.es_url, index=self.index, path=self.index_path,
            api_key=self.api_key, username=self.username, password=self.password,
            ca_certs=self.ca_certs, verify_certs=self.verify_certs,
        )

    def __post_init__(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if isinstance(self.kafka_topic, str):
            self.kafka_topic = [self.kafka_topic]
        self.sink = SINK_ALIASES.get(self.sink, self.sink)


SINKS = ("parquet", *INDEX_SINKS)
SOURCES = ("files", "kafka")

# section -> key -> expected Python type(s)
SECTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "source": {
        "type": (str,),
        "input": (str, list),
        "format": (str,),
        "kafka_bootstrap": (str,),
        "kafka_topic": (str, list),
        "kafka_group": (str,),
        "kafka_auto_offset_reset": (str,),
        "kafka_reader": (str,),
        "kafka_config": (dict,),
        "streaming": (bool,),
        "stop_after_records": (int,),
        "stop_after_seconds": (int, float),
    },
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
    "sink": {
        "type": (str,),
        "output": (str,),
        "url": (str,),
        "index": (str,),
        "path": (str,),
        "api_key": (str,),
        "username": (str,),
        "password": (str,),
        "ca_certs": (str,),
        "verify_certs": (bool,),
    },
}
RENAMED = {("source", "type"): "source", ("sink", "type"): "sink", ("sink", "url"): "es_url", ("sink", "path"): "index_path"}
"""(section, key) -> JobConfig attribute, where the config-file name reads better."""
PATH_KEYS = ("input", "endpoints", "output", "index_path", "ca_certs")


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
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                names = " or ".join(t.__name__ for t in expected)
                raise JobConfigError(f"{path}: {section}.{key}: expected {names}, got {value!r}")
            name = RENAMED.get((section, key), key)
            values[name] = _resolve_paths(value, path.parent) if name in PATH_KEYS else value
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
    if config.source not in SOURCES:
        raise fail("source", f"unknown source '{config.source}' (known: {', '.join(SOURCES)})")
    if config.source == "kafka":
        if not config.kafka_bootstrap or not config.kafka_topic:
            raise fail("kafka", "the kafka source needs --kafka-bootstrap HOST:PORT and --kafka-topic T")
        if config.kafka_reader not in ("python", "beam"):
            raise fail("kafka_reader", "expected 'python' or 'beam'")
        if config.kafka_auto_offset_reset not in ("earliest", "latest"):
            raise fail("kafka_auto_offset_reset", "expected 'earliest' or 'latest'")
    if config.sink not in SINKS:
        raise fail("sink", f"unknown sink '{config.sink}' (known: {', '.join(SINKS)})")
    if config.sink == "embedded" and not config.index_path:
        raise fail("index_path", "the embedded index sink needs a directory (--index-path DIR)")
