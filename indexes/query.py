"""Query an index written by `enrich run`: embed the query with the endpoint the index was
written with (sparse: expanded into weighted tokens; dense: one vector), then search."""

from __future__ import annotations

import dataclasses

from inference_enrich.indexes import Hit, IndexSettings, open_index
from inference_enrich.indexes.base import QueryVector, index_safe_tokens
from inference_enrich.indexes.fusion import RANK_CONSTANT
from inference_enrich.inference import Endpoint, ModelRuntime, infer_texts, load_reranker, load_runtime
from inference_enrich.inference.rerank_results import Reranker
from inference_enrich.inference.runtime import WholeTextRuntime
from inference_enrich.inference.results import EMBEDDING_TASK_TYPES, RERANK, SparseEmbedding, TextEmbedding

SEARCHABLE_TASK_TYPES = EMBEDDING_TASK_TYPES


def require_searchable(endpoint: Endpoint) -> None:
    """Refuse, before loading a model, an endpoint whose results are not embeddings."""
    if endpoint.task_type not in SEARCHABLE_TASK_TYPES:
        raise ValueError(f"endpoint '{endpoint.inference_id}' is a {endpoint.task_type} endpoint; "
                         f"searching needs a {' or '.join(SEARCHABLE_TASK_TYPES)} one")


def embed_query(endpoint: Endpoint, runtime: ModelRuntime | WholeTextRuntime, query: str) -> QueryVector:
    """``query`` embedded whole, once (never chunked), by ``endpoint``'s loaded ``runtime``;
    sparse tokens follow the index's dot rule, so they match the indexed ones."""
    require_searchable(endpoint)
    (embedded,) = infer_texts(runtime, [query])
    if isinstance(embedded, SparseEmbedding):
        return index_safe_tokens(embedded.embedding)[0]
    if isinstance(embedded, TextEmbedding):
        return list(embedded.embedding)
    raise TypeError(f"endpoint '{endpoint.inference_id}' answered a query with {type(embedded).__name__}")


SEARCH_MODES = ("semantic", "bm25", "hybrid")
"""semantic: the endpoint's embeddings; bm25: the text alone; hybrid: both, fused by RRF."""


class Searcher:
    """One opened index and the endpoint that embeds queries for it (loaded at the first
    query that needs it): what `enrich search` asks once and `enrich eval` asks per query."""

    def __init__(self, settings: IndexSettings, endpoint: Endpoint, field: str | None = None,
                 text_field: str = "text", reranker: Endpoint | None = None) -> None:
        require_searchable(endpoint)
        if reranker is not None:
            reranker.require_task_type(RERANK)
        self._endpoint, self._field, self._text_field = endpoint, field, text_field
        self._runtime: ModelRuntime | WholeTextRuntime | None = None
        self._reranker: Reranker | None = load_reranker(reranker) if reranker is not None else None
        self._index = open_index(settings)

    def search(self, query: str, top_k: int, mode: str = "semantic", rank_window_size: int | None = None,
               rank_constant: int = RANK_CONSTANT) -> list[Hit]:
        """Top ``top_k`` hits for ``query`` by ``mode`` (one of ``SEARCH_MODES``); hybrid fuses
        the first ``rank_window_size`` (default: ``top_k``) hits of each, as Elasticsearch's
        ``rrf`` retriever does. With a reranker, the first ``rank_window_size`` hits are
        scored against ``query`` by it (a chunked hit by its best chunk) and the best
        ``top_k`` of them returned, scored by their relevance."""
        if top_k < 1:
            raise ValueError("--top-k must be positive")
        if rank_window_size is not None and rank_window_size < 1:
            raise ValueError("--rank-window-size must be positive")
        if rank_window_size is not None and rank_window_size < top_k:  # as Elasticsearch's rrf refuses it
            raise ValueError(f"--rank-window-size ({rank_window_size}) must be at least --top-k ({top_k})")
        if self._reranker is None:
            return self._search(query, top_k, mode, rank_window_size, rank_constant)
        window = rank_window_size or top_k
        hits = self._search(query, window, mode, window, rank_constant)
        texts = [hit.snippet(self._text_field) or str(hit.source.get(self._text_field, "")) for hit in hits]
        return [dataclasses.replace(hits[ranked.index], score=ranked.relevance_score)
                for ranked in self._reranker.rerank(query, texts, top_k, False)]

    def _search(self, query: str, top_k: int, mode: str, rank_window_size: int | None,
                rank_constant: int) -> list[Hit]:
        if mode == "bm25":
            return self._index.search_text(query, self._text_field, self._field, top_k)
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode '{mode}' (known: {', '.join(SEARCH_MODES)})")
        if self._runtime is None:
            self._runtime = load_runtime(self._endpoint)
        vector = embed_query(self._endpoint, self._runtime, query)
        if mode == "semantic":
            return self._index.search(vector, self._field, top_k)
        return self._index.search_hybrid(query, vector, self._text_field, self._field, top_k,
                                         rank_window_size or top_k, rank_constant)

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def search_index(settings: IndexSettings, query: str, endpoint: Endpoint, field: str | None,
                 top_k: int, mode: str = "semantic", text_field: str = "text",
                 rank_window_size: int | None = None, reranker: Endpoint | None = None) -> list[Hit]:
    """Top ``top_k`` hits for ``query`` (see ``Searcher.search``). Semantically: by dot
    product with the indexed sparse vectors for a sparse endpoint, by kNN over the indexed
    dense vectors for a text_embedding one; an index holding the other kind of embedding is
    a one-line ``ValueError``.

    Over a chunked index the hits are documents, each once, ranked by their best chunk, and
    each names that chunk (``Hit.best_chunk``, ``Hit.snippet``)."""
    with Searcher(settings, endpoint, field, text_field, reranker) as searcher:
        return searcher.search(query, top_k, mode, rank_window_size)


def written_text_field(settings: IndexSettings) -> str | None:
    """The text field the index was written with (None where it cannot tell)."""
    index = open_index(settings)
    try:
        return index.text_field()
    finally:
        index.close()
