"""Which index to use and how to connect to it, from a config file, flags or environment.

Secrets (API key, password) may come from the environment so they never sit in a config file
or a shell history: ``ES_API_KEY``, ``ES_USERNAME``/``ES_PASSWORD`` (Elasticsearch) and
``OPENSEARCH_USERNAME``/``OPENSEARCH_PASSWORD``. They are never logged: ``repr`` masks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from urllib.parse import urlsplit, urlunsplit

from inference_enrich.indexes.base import SearchIndex

INDEX_SINKS = ("elasticsearch", "opensearch", "embedded")
SINK_ALIASES = {"index": "embedded"}
"""Older names still accepted: ``--sink index`` was the embedded index's first name."""
DEFAULT_URLS = {"elasticsearch": "http://127.0.0.1:9200", "opensearch": "http://127.0.0.1:9200"}
SECRET_FIELDS = ("api_key", "password")


@dataclass(frozen=True)
class IndexSettings:
    """Where an index lives. ``kind`` is one of ``INDEX_SINKS``."""

    kind: str
    url: str | None = None  # elasticsearch / opensearch
    index: str = "enriched"  # elasticsearch / opensearch index name
    path: str | None = None  # embedded index directory
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SINK_ALIASES.get(self.kind, self.kind))

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            elif f.name == "url" and value:
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"IndexSettings({', '.join(shown)})"

    def with_environment(self) -> "IndexSettings":
        """Fill credentials that were not configured from the environment."""
        prefix = "ES" if self.kind == "elasticsearch" else "OPENSEARCH"
        updates = {
            "api_key": self.api_key or (os.environ.get("ES_API_KEY") if prefix == "ES" else None),
            "username": self.username or os.environ.get(f"{prefix}_USERNAME"),
            "password": self.password or os.environ.get(f"{prefix}_PASSWORD"),
        }
        return IndexSettings(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **updates})

    def describe(self) -> str:
        """Where the index is, for messages (no secrets)."""
        if self.kind == "embedded":
            return f"embedded index {self.path}"
        return f"{self.kind} {redact_url(self.url or DEFAULT_URLS[self.kind])} index '{self.index}'"


def redact_url(url: str) -> str:
    """``url`` without a password in its user-info part."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


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
