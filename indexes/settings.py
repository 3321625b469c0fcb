"""Which index to use and how to connect to it, from a config file, flags or environment.

Secrets (API key, password) may come from the environment so they never sit in a config file
or a shell history: ``ES_API_KEY``, ``ES_USERNAME``/``ES_PASSWORD`` (Elasticsearch) and
``OPENSEARCH_API_KEY``, ``OPENSEARCH_USERNAME``/``OPENSEARCH_PASSWORD`` (OpenSearch); or from
files (``api_key_file``, ``password_file``: any fsspec URL), read only where the index is opened. Runners that start
workers elsewhere (Dataflow) pass workers neither the launching environment nor anything but
the job graph, so a file (``gs://...``, readable by the workers' service account) is how a
secret reaches them without being written into the job itself. They are held as ``SecretStr`` and shown by the
project's one rule (inference/secrets.py): ``repr`` masks them and the URL's password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import fsspec
from pydantic import SecretStr

from inference_enrich.indexes.base import SearchIndex
from inference_enrich.inference.secrets import as_secret, masked, redact_url

INDEX_SINKS = ("elasticsearch", "opensearch", "embedded")
SINK_ALIASES = {"index": "embedded"}
"""Older names still accepted: ``--sink index`` was the embedded index's first name."""
DEFAULT_URLS = {"elasticsearch": "http://127.0.0.1:9200", "opensearch": "http://127.0.0.1:9200"}


@dataclass(frozen=True)
class IndexSettings:
    """Where an index lives. ``kind`` is one of ``INDEX_SINKS``."""

    kind: str
    url: str | None = None  # elasticsearch / opensearch
    index: str = "enriched"  # elasticsearch / opensearch index name
    path: str | None = None  # embedded index directory
    api_key: SecretStr | None = None  # a plain str is accepted and wrapped
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    api_key_file: str | None = None  # a file holding the API key (any fsspec URL)
    password_file: str | None = None  # a file holding the password (any fsspec URL)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SINK_ALIASES.get(self.kind, self.kind))
        object.__setattr__(self, "api_key", as_secret(self.api_key))
        object.__setattr__(self, "password", as_secret(self.password))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={masked(f.name, getattr(self, f.name))!r}" for f in fields(self))
        return f"IndexSettings({shown})"

    def with_environment(self) -> "IndexSettings":
        """Fill credentials that were not configured: from their files, else the environment."""
        prefix = "ES" if self.kind == "elasticsearch" else "OPENSEARCH"
        updates = {
            "api_key": self.api_key or _read_secret(self.api_key_file, "api_key_file")
            or os.environ.get(f"{prefix}_API_KEY"),
            "username": self.username or os.environ.get(f"{prefix}_USERNAME"),
            "password": self.password or _read_secret(self.password_file, "password_file")
            or os.environ.get(f"{prefix}_PASSWORD"),
        }
        return IndexSettings(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **updates})

    def describe(self) -> str:
        """Where the index is, for messages (no secrets)."""
        if self.kind == "embedded":
            return f"embedded index {self.path}"
        return f"{self.kind} {redact_url(self.url or DEFAULT_URLS[self.kind])} index '{self.index}'"


def _read_secret(url: str | None, setting: str) -> SecretStr | None:
    """The secret in the file at ``url`` (surrounding whitespace dropped); None without a URL.
    Errors name the setting and the file, never the content."""
    if url is None:
        return None
    try:
        with fsspec.open(url, "rt", encoding="utf-8") as stream:
            secret = stream.read().strip()
    except (OSError, ValueError, ImportError) as error:
        raise ValueError(f"{setting}: cannot read {redact_url(url)}: {type(error).__name__}: {error}") from None
    if not secret:
        raise ValueError(f"{setting}: {redact_url(url)} is empty")
    return SecretStr(secret)


def open_index(settings: IndexSettings) -> SearchIndex:
    """Connect to (or open) the index ``settings`` describe."""
    settings = settings.with_environment()
    if settings.kind == "elasticsearch":
        from inference_enrich.indexes.elasticsearch import ElasticsearchIndex

        return ElasticsearchIndex(settings)
    if settings.kind == "opensearch":
        from inference_enrich.indexes.opensearch import OpenSearchIndex

        return OpenSearchIndex(settings)
    if settings.kind == "embedded":
        from inference_enrich.indexes.embedded import EmbeddedIndex

        if not settings.path:
            raise ValueError("the embedded index needs a directory: --index-path DIR")
        return EmbeddedIndex(settings.path)
    raise ValueError(f"unknown index kind '{settings.kind}' (known: {', '.join(INDEX_SINKS)})")
