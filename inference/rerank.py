"""The ``rerank`` task type's local service: score documents against a query with a
cross-encoder (the answer's shapes are in ``rerank_results.py``).

The local service runs any Hugging Face cross-encoder directory
(``AutoModelForSequenceClassification`` with one output label, e.g. the ms-marco MiniLM
cross-encoders): each (query, document) pair is one input, cut to the model's limit from
the document's end; the relevance score is the sigmoid of the label's logit, as
sentence-transformers' ``CrossEncoder.predict`` gives it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from inference_enrich.inference.errors import ModelLoadError
from inference_enrich.inference.rerank_results import RankedDocument, ranked, rerank_options
from inference_enrich.inference.results import RERANK

DEFAULT_BATCH_SIZE = 32


class CrossEncoder:
    """A local cross-encoder; safe to call from several threads (calls take turns)."""

    task_type = RERANK

    def __init__(self, path: Path, model_id: str, max_sequence_length: int | None = None,
                 task_settings: Mapping[str, Any] | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from inference_enrich.inference.loading import load_model

        try:  # loaded one model at a time: another load in parallel can leave a model's tied weights unset
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self._model = load_model(AutoModelForSequenceClassification, path).eval()
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
