"""The ``rerank`` task type: score documents against a query with a cross-encoder.

Elasticsearch's shapes::

    POST _inference/rerank/my-reranker
    {"query": "...", "input": ["doc 0", "doc 1", ...], "top_n": 2, "return_documents": true}
    -> {"rerank": [{"index": 1, "relevance_score": 0.93, "text": "doc 1"}, {"index": 0, ...}]}

Entries are ordered by relevance, highest first; ``index`` is the document's position in
``input``; ``text`` only with ``return_documents`` (default true, as the elasticsearch
service's); ``top_n`` keeps the best n. ``top_n`` and ``return_documents`` come from the
request, else from the endpoint's ``task_settings``.

The local service runs any Hugging Face cross-encoder directory
(``AutoModelForSequenceClassification`` with one output label, e.g. the ms-marco MiniLM
cross-encoders): each (query, document) pair is one input, cut to the model's limit from
the document's end; the relevance score is the sigmoid of the label's logit, as
sentence-transformers' ``CrossEncoder.predict`` gives it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from inference_enrich.inference.errors import ModelLoadError
from inference_enrich.inference.results import RERANK

DEFAULT_BATCH_SIZE = 32


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


class CrossEncoder:
    """A local cross-encoder; safe to call from several threads (calls take turns)."""

    task_type = RERANK

    def __init__(self, path: Path, model_id: str, max_sequence_length: int | None = None,
                 task_settings: Mapping[str, Any] | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self._model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the cross-encoder '{model_id}' from {path}: {error}") from error
        if self._model.config.num_labels != 1:
            raise ModelLoadError(f"'{model_id}' has {self._model.config.num_labels} output labels; a rerank "
                                 "model (cross-encoder) has one relevance logit")
        model_limit = getattr(self._model.config, "max_position_embeddings", 512)
        self.max_sequence_length = min(max_sequence_length or model_limit, model_limit)
        self.task_settings = dict(task_settings or {})
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """The relevance of each document to ``query`` (sigmoid of the logit), in input order.
        Pairs are batched by length so padding stays small."""
        scores = [0.0] * len(documents)
        order = sorted(range(len(documents)), key=lambda i: len(documents[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), self._batch_size):
                batch = order[start:start + self._batch_size]
                encoded = self._tokenizer([query] * len(batch), [documents[i] for i in batch], padding=True,
                                          truncation="longest_first", max_length=self.max_sequence_length,
                                          return_tensors="pt")
                logits = self._model(**encoded).logits[:, 0]
                for i, value in zip(batch, torch.sigmoid(logits).tolist()):
                    scores[i] = float(value)
        return scores

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None,
               return_documents: bool | None = None) -> list[RankedDocument]:
        """``documents`` ranked by relevance to ``query`` (see ``rerank_options``)."""
        top_n, return_documents = rerank_options(self.task_settings, top_n, return_documents)
        return ranked(self.score(query, documents), documents, top_n, return_documents)
