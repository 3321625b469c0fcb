"""What every search index offers: create with a mapping, bulk-write with per-item outcomes,
search with a sparse or dense query vector (or, for BM25, with the query's words).

A chunked index (``IndexSpec.chunked``, for endpoints with ``chunking_settings``) holds one
embedding per chunk of a document: its output field is a list of
``{"start_offset", "end_offset", "embedding"}`` (offsets in characters of the text field), and
a search scores each document by its best chunk and names that chunk in ``Hit.best_chunk``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

from inference_enrich.inference.results import SPARSE_EMBEDDING, TEXT_EMBEDDING

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


QueryVector = dict[str, float] | list[float]
"""A query embedding: sparse ``{token: weight}`` or a dense vector."""


def query_task_type(query_vector: QueryVector) -> str:
    """The task type whose endpoints make ``query_vector``."""
    return SPARSE_EMBEDDING if isinstance(query_vector, dict) else TEXT_EMBEDDING


def mismatch_error(where: str, held: str, query_vector: QueryVector) -> ValueError | None:
    """The one-line error for searching embeddings of task type ``held`` with a query vector of
    the other kind (None when they fit): a sparse index answers a dense query with 0 hits, not
    an error, and an engine's own message about it is no clearer."""
    asked = query_task_type(query_vector)
    if asked == held:
        return None
    return ValueError(f"{where} holds {held} embeddings, and the query was embedded by a {asked} "
                      f"endpoint: search it with the {held} endpoint the index was written with")


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

    def search(self, query_vector: QueryVector, field: str | None, top_k: int) -> list[Hit]:
        """Top ``top_k`` documents by similarity of ``field`` with ``query_vector``: dot
        product for a sparse vector, kNN (cosine) for a dense one; a query of the other kind
        than the field's is a ``ValueError``. ``field=None``: the field the index was written
        with (``DEFAULT_OUTPUT_FIELD`` where the index cannot tell). In a chunked index a
        document scores its best chunk, comes back once, and its hit names that chunk."""

    def search_text(self, text: str, text_field: str, field: str | None, top_k: int) -> list[Hit]:
        """Top ``top_k`` documents by BM25 of ``text`` over ``text_field`` (the engine's own
        ``match`` query; bm25s in the embedded index); only documents sharing a word with
        ``text``. ``field``: the embedding field, left out of the hits' sources."""

    def search_hybrid(self, text: str, query_vector: QueryVector, text_field: str, field: str | None,
                      top_k: int, rank_window_size: int, rank_constant: int) -> list[Hit]:
        """``search_text`` and ``search`` fused by reciprocal rank fusion with the semantics of
        Elasticsearch's ``rrf`` retriever (see ``indexes/fusion.py``): the engine's own where it
        has one, ours otherwise. Hits' scores are RRF scores."""

    def text_field(self) -> str | None:
        """The text field the index was written with (``enrich search`` shows it in hits);
        None where the index cannot tell (a cluster index not created by us)."""

    def count(self) -> int:
        """Documents (not chunks) in the index (after making recent writes visible)."""

    def close(self) -> None:
        """Release connections or files."""
