"""What every search index offers: create with a mapping, bulk-write with per-item outcomes,
search with a sparse query vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

from inference_enrich.inference.results import SPARSE_EMBEDDING

DEFAULT_OUTPUT_FIELD = "embedding"

DOT_REPLACEMENT = "\u2024"
"""Elasticsearch and OpenSearch reject '.' in ``sparse_vector`` / ``rank_features`` feature
names (it would mean an object path). Every '.' in a token becomes U+2024 ONE DOT LEADER,
which looks the same and is in no BERT vocabulary, so no two tokens can collide; queries get
the same rule, so they still match. With SPLADE-tiny this touches '.', '...' and '##.'."""


def index_safe_tokens(embedding: dict[str, float]) -> tuple[dict[str, float], int]:
    """The embedding with the dot rule applied, and how many tokens were renamed."""
    if not any("." in token for token in embedding):
        return embedding, 0
    renamed = sum("." in token for token in embedding)
    return {token.replace(".", DOT_REPLACEMENT): w for token, w in embedding.items()}, renamed


class IndexUnreachable(RuntimeError):
    """The cluster could not be reached (refused, unresolvable, TLS failure), after the
    client's retries; the message names the cluster and the cause, never a secret."""


@dataclass(frozen=True)
class IndexSpec:
    """The fields an index is created with."""

    text_field: str
    output_field: str
    task_type: str = SPARSE_EMBEDDING
    dims: int | None = None  # dense only


@dataclass(frozen=True)
class BulkOutcome:
    """The result of writing one document: ``error`` is None when it was indexed."""

    doc_id: str
    error: str | None = None


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float
    source: dict[str, Any]


class SearchIndex(Protocol):
    """The seam every index backend plugs into."""

    def ensure_index(self, spec: IndexSpec) -> None:
        """Create the index (with its mapping) when missing; check it when present."""

    def bulk(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[BulkOutcome]:
        """Write ``(id, source)`` pairs, each id at most once (an existing document with the
        id is replaced); one outcome per document, in any order."""

    def search(self, query_vector: dict[str, float], field: str | None, top_k: int) -> list[Hit]:
        """Top ``top_k`` documents by dot product of ``field`` with ``query_vector``;
        ``field=None``: the field the index was written with (``DEFAULT_OUTPUT_FIELD`` where
        the index cannot tell)."""

    def count(self) -> int:
        """Documents in the index (after making recent writes visible)."""

    def close(self) -> None:
        """Release connections or files."""
