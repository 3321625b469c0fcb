"""What every search index offers: create with a mapping, bulk-write with per-item outcomes,
search with a sparse query vector.

A chunked index (``IndexSpec.chunked``, for endpoints with ``chunking_settings``) holds one
embedding per chunk of a document: its output field is a list of
``{"start_offset", "end_offset", "embedding"}`` (offsets in characters of the text field), and
a search scores each document by its best chunk and names that chunk in ``Hit.best_chunk``."""

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


START_OFFSET, END_OFFSET, CHUNK_EMBEDDING = "start_offset", "end_offset", "embedding"
"""The keys of one chunk in a chunked output field (Elasticsearch's ``semantic_text`` names)."""


class IndexUnreachable(RuntimeError):
    """The cluster could not be reached (refused, unresolvable, TLS failure), after the
    client's retries; the message names the cluster and the cause, never a secret."""


class IndexRefused(ValueError):
    """The server answered, but not as the index engine does (it is something else: a wrong
    URL or port), or refused the request outright (a missing privilege). A configuration
    problem: the message names the cluster and what it answered, never a secret."""


@dataclass(frozen=True)
class IndexSpec:
    """The fields an index is created with."""

    text_field: str
    output_field: str
    task_type: str = SPARSE_EMBEDDING
    dims: int | None = None  # dense only
    chunked: bool = False  # the output field holds one embedding per chunk


@dataclass(frozen=True)
class BulkOutcome:
    """The result of writing one document: ``error`` is None when it was indexed."""

    doc_id: str
    error: str | None = None


@dataclass(frozen=True)
class BestChunk:
    """The chunk that scored a document in a chunked index: ``text[start_offset:end_offset]``."""

    start_offset: int
    end_offset: int


@dataclass(frozen=True)
class Hit:
    """One document found. ``best_chunk`` is set by chunked indexes (None otherwise)."""

    doc_id: str
    score: float
    source: dict[str, Any]
    best_chunk: BestChunk | None = None

    def snippet(self, text_field: str) -> str | None:
        """The best chunk's text (``source[text_field][start:end]``); None when the index is not
        chunked or the hit carries no text."""
        text = self.source.get(text_field)
        if self.best_chunk is None or not isinstance(text, str):
            return None
        return text[self.best_chunk.start_offset:self.best_chunk.end_offset]


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
        the index cannot tell). In a chunked index a document scores its best chunk's dot
        product, comes back once, and its hit names that chunk."""

    def text_field(self) -> str | None:
        """The text field the index was written with (``enrich search`` shows it in hits);
        None where the index cannot tell (a cluster index not created by us)."""

    def count(self) -> int:
        """Documents (not chunks) in the index (after making recent writes visible)."""

    def close(self) -> None:
        """Release connections or files."""
