"""A job config file, read and merged with the flags given into a ``JobConfig``.

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
      publish: launcher              # who publishes a batch run: launcher | pipeline (its last step)
      mode: overwrite                # error-if-exists | overwrite | append (default: see README)
      max_dead_letter_ratio: 0.5     # fail the run when more than this share is dead-lettered
      url: http://127.0.0.1:9200     # elasticsearch / opensearch
      index: enriched                # elasticsearch / opensearch index name
      path: ./idx                    # the embedded index directory (type: embedded)
      api_key: ...                   # or ES_API_KEY in the environment (preferred)
      username: elastic              # or ES_USERNAME / OPENSEARCH_USERNAME
      password: ...                  # or ES_PASSWORD / OPENSEARCH_PASSWORD (preferred)
      api_key_file: gs://b/es-key    # or the API key / password in a file (any fsspec URL),
      password_file: ./es-password   #   read where the index is opened (Dataflow workers too)
      ca_certs: /path/to/ca.pem
      verify_certs: true

Relative local paths in a config file are relative to that file's directory; the errors
name the file, section and key (or the flag) of each bad setting.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import ValidationError

from inference_enrich.inference.errors import InferenceEnrichError
from inference_enrich.inference.validation import setting_problems, yaml_problem
from inference_enrich.pipelines.config import SECTIONS, SETTINGS, JobConfig, flag


class JobConfigError(InferenceEnrichError):
    """An invalid job configuration; the message names the file (or flag) and the key."""


FILE_KEYS: dict[tuple[str, str], str] = {
    (setting.section, setting.file_key(name)): name for name, setting in SETTINGS.items()
}
"""(section, key) of a config file -> JobConfig field."""


def load_job_config(path: str | Path | None, overrides: dict[str, Any]) -> JobConfig:
    """Defaults, then the config file (if any), then ``overrides`` (flags that were given,
    by field name; None means not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_config_file(Path(path)))
    given = {name: value for name, value in overrides.items() if value is not None}
    values.update(given)
    try:
        return JobConfig(**values)
    except ValidationError as error:
        secret = [name for name, setting in SETTINGS.items() if setting.secret]
        problems = setting_problems(error, JobConfig, secret_keys=secret)
        raise JobConfigError("\n".join(
            f"{_where(key, path, given)}: {problem}" for key, problem in problems
        )) from None


def _where(key: str, path: str | Path | None, given: dict[str, Any]) -> str:
    """Where the user sets ``key`` (a field name, maybe with an item suffix): the flag they
    gave, else the config file's ``section.key``."""
    name, dot, item = key.partition(".")
    setting = SETTINGS.get(name)
    if path is not None and name not in given and setting is not None:
        return f"{path}: {setting.section}.{setting.file_key(name)}{dot}{item}"
    return f"command line: {flag(name) if setting is not None else name}{dot}{item}"


def _read_config_file(path: Path) -> dict[str, Any]:
    """The file's settings by JobConfig field name, relative paths resolved."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise JobConfigError(f"{path}: cannot read config file: {error}") from error
    except yaml.YAMLError as error:
        raise JobConfigError(f"{path}: not valid YAML: {yaml_problem(error)}") from None
    if not isinstance(document, dict):
        raise JobConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    values: dict[str, Any] = {}
    for section, body in document.items():
        if section not in SECTIONS:
            raise JobConfigError(f"{path}: {section}: unknown section{_did_you_mean(section, SECTIONS)} "
                                 f"(known: {', '.join(SECTIONS)})")
        if not isinstance(body, dict | None):
            raise JobConfigError(f"{path}: {section}: expected a mapping of settings")
        for key, value in (body or {}).items():
            name = FILE_KEYS.get((section, key))
            if name is None:
                known = [k for s, k in FILE_KEYS if s == section]
                elsewhere = {k: f"{s}.{k}" for s, k in FILE_KEYS if s != section}
                hint = _did_you_mean(key, known) or _did_you_mean(key, list(elsewhere), elsewhere)
                raise JobConfigError(f"{path}: {section}.{key}: unknown key{hint} (known: {', '.join(known)})")
            values[name] = _resolve_paths(value, path.parent) if SETTINGS[name].path else value
    return values


def _resolve_paths(value: Any, base: Path) -> Any:
    if isinstance(value, list):
        return [_resolve_paths(item, base) for item in value]
    if not isinstance(value, str) or "://" in value:
        return value  # URLs stay; a wrong type is reported by validation
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _did_you_mean(name: object, known: Sequence[str], spelled: dict[str, str] | None = None) -> str:
    """`` (did you mean X?)`` for a close known name (written as ``spelled`` gives it, e.g.
    with its section), as the flags' check says it, else ""."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.75)
    return f" (did you mean {(spelled or {}).get(close[0], close[0])}?)" if close else ""
