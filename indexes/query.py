"""Query an index written by `enrich run`: expand the query with the sparse endpoint, then search."""

from __future__ import annotations

from inference_enrich.indexes import Hit, IndexSettings, open_index
from inference_enrich.indexes.base import index_safe_tokens
from inference_enrich.inference import Endpoint, infer_texts, load_runtime
from inference_enrich.inference.results import SPARSE_EMBEDDING


def search_index(settings: IndexSettings, query: str, endpoint: Endpoint, field: str | None,
                 top_k: int) -> list[Hit]:
    """Top ``top_k`` hits for ``query`` by dot product with the indexed sparse vectors.

    The query is embedded whole, once, by the endpoint's model (never chunked). Over a
    chunked index the hits are documents, each once, ranked by their best chunk, and each
    names that chunk (``Hit.best_chunk``, ``Hit.snippet``)."""
    endpoint.require_task_type(SPARSE_EMBEDDING)
    if top_k < 1:
        raise ValueError("--top-k must be positive")
    (expanded,) = infer_texts(load_runtime(endpoint), [query])
    query_vector, _ = index_safe_tokens(expanded.embedding)  # same names as indexed documents
    index = open_index(settings)
    try:
        return index.search(query_vector, field, top_k)
    finally:
        index.close()


def written_text_field(settings: IndexSettings) -> str | None:
    """The text field the index was written with (None where it cannot tell)."""
    index = open_index(settings)
    try:
        return index.text_field()
    finally:
        index.close()
