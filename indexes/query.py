"""Query an index written by `enrich run`: embed the query with the endpoint the index was
written with (sparse: expanded into weighted tokens; dense: one vector), then search."""

from __future__ import annotations

from typing import Any

from inference_enrich.indexes import Hit, IndexSettings, open_index
from inference_enrich.indexes.base import QueryVector, index_safe_tokens
from inference_enrich.inference import Endpoint, infer_texts, load_runtime
from inference_enrich.inference.results import SPARSE_EMBEDDING, TEXT_EMBEDDING

SEARCHABLE_TASK_TYPES = (SPARSE_EMBEDDING, TEXT_EMBEDDING)


def require_searchable(endpoint: Endpoint) -> None:
    """Refuse, before loading a model, an endpoint whose results are not embeddings."""
    if endpoint.task_type not in SEARCHABLE_TASK_TYPES:
        raise ValueError(f"endpoint '{endpoint.inference_id}' is a {endpoint.task_type} endpoint; "
                         f"searching needs a {' or '.join(SEARCHABLE_TASK_TYPES)} one")


def embed_query(endpoint: Endpoint, runtime: Any, query: str) -> QueryVector:
    """``query`` embedded whole, once (never chunked), by ``endpoint``'s loaded ``runtime``;
    sparse tokens follow the index's dot rule, so they match the indexed ones."""
    require_searchable(endpoint)
    (embedded,) = infer_texts(runtime, [query])
    if endpoint.task_type == SPARSE_EMBEDDING:
        return index_safe_tokens(embedded.embedding)[0]
    return list(embedded.embedding)


def search_index(settings: IndexSettings, query: str, endpoint: Endpoint, field: str | None,
                 top_k: int) -> list[Hit]:
    """Top ``top_k`` hits for ``query``: by dot product with the indexed sparse vectors for a
    sparse endpoint, by kNN over the indexed dense vectors for a text_embedding one. An index
    holding the other kind of embedding is a one-line ``ValueError``.

    Over a chunked index the hits are documents, each once, ranked by their best chunk, and
    each names that chunk (``Hit.best_chunk``, ``Hit.snippet``)."""
    if top_k < 1:
        raise ValueError("--top-k must be positive")
    require_searchable(endpoint)
    query_vector = embed_query(endpoint, load_runtime(endpoint), query)
    index = open_index(settings)
    try:
        return index.search(query_vector, field, top_k)
    finally:
        index.close()
