"""The ``rerank`` task type's results in Elasticsearch's shapes (torch-free: the API, the
server and remote rerankers use them without loading a model; ``rerank.py`` is the local
cross-encoder).

    POST _inference/rerank/my-reranker
    {"query": "...", "input": ["doc 0", "doc 1", ...], "top_n": 2, "return_documents": true}
    -> {"rerank": [{"index": 1, "relevance_score": 0.93, "text": "doc 1"}, {"index": 0, ...}]}

Entries are ordered by relevance, highest first; ``index`` is the document's position in
``input``; ``text`` only with ``return_documents`` (default true, as the elasticsearch
service's); ``top_n`` keeps the best n. ``top_n`` and ``return_documents`` come from the
request, else from the endpoint's ``task_settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from inference_enrich.inference.results import RERANK


@dataclass(frozen=True)
class RankedDocument:
    """One document of a rerank answer."""

    index: int
    relevance_score: float
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"index": self.index, "relevance_score": self.relevance_score}
        if self.text is not None:
            shown["text"] = self.text
        return shown


class Reranker(Protocol):
    """A loaded rerank endpoint, local (``inference/rerank.py``) or remote
    (``inference/remote/rerank.py``): ``load_reranker`` returns one."""

    task_type: str

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None,
               return_documents: bool | None = None) -> list[RankedDocument]:
        """``documents`` ranked by relevance to ``query``."""


def ranked(scores: Sequence[float], documents: Sequence[str], top_n: int | None = None,
           return_documents: bool = True) -> list[RankedDocument]:
    """Documents by score, highest first (equal scores keep input order), the first
    ``top_n``, with their text when ``return_documents``."""
    if top_n is not None and top_n < 1:
        raise ValueError("[top_n] must be a positive integer")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:top_n]
    return [RankedDocument(i, float(scores[i]), documents[i] if return_documents else None) for i in order]


def rerank_response(documents: Sequence[RankedDocument]) -> dict[str, Any]:
    """Elasticsearch's body: ``{"rerank": [{"index", "relevance_score", "text"?}, ...]}``."""
    return {RERANK: [document.to_dict() for document in documents]}


def rerank_options(task_settings: Mapping[str, Any], top_n: int | None,
                   return_documents: bool | None) -> tuple[int | None, bool]:
    """(top_n, return_documents): the request's, else the endpoint's task settings', else
    (all, true)."""
    top_n = top_n if top_n is not None else task_settings.get("top_n")
    if return_documents is None:
        return_documents = task_settings.get("return_documents", True)
    return top_n, bool(return_documents)
