"""Reciprocal rank fusion with the semantics of Elasticsearch's ``rrf`` retriever.

Each ranking is cut to its first ``rank_window_size`` hits; a document scores
``sum(1 / (rank_constant + rank))`` over the rankings that hold it (rank counted from 1),
and the fused ranking is by that score, highest first. Ties keep the order in which the
documents were first met, walking the rankings rank by rank (so a tie goes to the document
ranked higher by any retriever, then to the earlier retriever).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from inference_enrich.indexes.base import Hit, QueryVector, SearchIndex

RANK_CONSTANT = 60
"""Elasticsearch's default ``rank_constant``."""


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], top_k: int, rank_window_size: int,
                           rank_constant: int = RANK_CONSTANT) -> list[Hit]:
    """The ``top_k`` best documents of ``rankings`` fused; each hit's score is its RRF score,
    its source and best chunk those of the first ranking that found it with them."""
    if rank_constant < 1 or rank_window_size < 1:
        raise ValueError("rank_constant and rank_window_size must be positive")
    windows = [list(ranking)[:rank_window_size] for ranking in rankings]
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for rank in range(1, rank_window_size + 1):
        for window in windows:
            if rank > len(window):
                continue
            hit = window[rank - 1]
            scores[hit.doc_id] = scores.get(hit.doc_id, 0.0) + 1.0 / (rank_constant + rank)
            known = first.setdefault(hit.doc_id, hit)
            if known.best_chunk is None and hit.best_chunk is not None:
                first[hit.doc_id] = replace(known, best_chunk=hit.best_chunk)
    ranked = sorted(scores, key=lambda doc_id: -scores[doc_id])  # stable: ties keep first-met order
    return [replace(first[doc_id], score=scores[doc_id]) for doc_id in ranked[:top_k]]


def hybrid_by_fusion(index: SearchIndex, text: str, query_vector: QueryVector, text_field: str,
                     field: str | None, top_k: int, rank_window_size: int,
                     rank_constant: int = RANK_CONSTANT) -> list[Hit]:
    """``index.search_hybrid`` for an index whose engine cannot fuse: two searches, each for
    the window, fused here."""
    window = max(rank_window_size, top_k)
    lexical = index.search_text(text, text_field, field, window)
    semantic = index.search(query_vector, field, window)
    return reciprocal_rank_fusion([lexical, semantic], top_k, window, rank_constant)
