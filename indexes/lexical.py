"""BM25 over stored texts, for indexes without a search engine of their own (the embedded
index): bm25s, with Lucene's scoring and Elasticsearch's default parameters, so a lexical
search here ranks as an Elasticsearch ``match`` query on a ``text`` field would.

Texts are cut into lower-cased word tokens (Unicode word characters), with no stop words and
no stemming: what Elasticsearch's ``standard`` analyzer does. Only documents that share a
word with the query are returned, as with ``match``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import bm25s
from bm25s.tokenization import Tokenizer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG

K1, B = 1.2, 0.75
"""Elasticsearch's (Lucene's) BM25 defaults."""
WORD = r"(?u)\b\w+\b"


class LexicalIndex:
    """BM25 over ``texts``, answering with their ``ids``."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        self._ids = list(ids)
        self._tokenizer = Tokenizer(lower=True, splitter=WORD, stopwords=None)
        self._retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        if self._ids:
            tokens = self._tokenizer.tokenize(list(texts), return_as="ids", show_progress=False)
            self._retriever.index(tokens, show_progress=False)

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        """(id, BM25 score) of the ``top_k`` best documents with a query word, best first."""
        if not self._ids:
            return []
        tokens = self._tokenizer.tokenize([query], return_as="ids", update_vocab=False, show_progress=False)
        if not tokens[0]:
            return []
        documents, scores = self._retriever.retrieve(tokens, k=min(top_k, len(self._ids)), show_progress=False,
                                                     n_threads=1)
        return [(self._ids[int(d)], float(s)) for d, s in zip(documents[0], scores[0]) if s > 0]
