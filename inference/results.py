"""Inference results in Elasticsearch's shapes.

``POST _inference/sparse_embedding/<id>`` answers
``{"sparse_embedding": [{"is_truncated": false, "embedding": {"port": 2.12, ...}}]}``;
``text_embedding`` answers ``{"text_embedding": [{"embedding": [0.01, ...]}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

SPARSE_EMBEDDING = "sparse_embedding"
TEXT_EMBEDDING = "text_embedding"
RERANK = "rerank"  # scores (query, document) pairs: inference/rerank.py
TASK_TYPES = (SPARSE_EMBEDDING, TEXT_EMBEDDING, RERANK)
EMBEDDING_TASK_TYPES = (SPARSE_EMBEDDING, TEXT_EMBEDDING)
"""The task types whose results are embeddings: what the job writes and indexes search."""


@dataclass(frozen=True)
class SparseEmbedding:
    """{token: weight}, every weight > 0, ordered highest weight first."""

    embedding: dict[str, float]
    is_truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"is_truncated": self.is_truncated, "embedding": self.embedding}


def prune(embedding: dict[str, float], min_weight: float | None, top_k: int | None) -> dict[str, float]:
    """A sparse endpoint's task settings applied to a {token: weight} map ordered highest
    weight first: keep weights above ``min_weight``, then the first ``top_k``. One rule for
    the runtime and for ``enrich serve``, which runs each model unpruned and prunes per
    request (so one loaded model serves every endpoint and request override)."""
    if not min_weight and top_k is None:
        return embedding
    kept = [(token, weight) for token, weight in embedding.items() if not min_weight or weight > min_weight]
    return dict(kept[:top_k] if top_k is not None else kept)


@dataclass(frozen=True)
class TextEmbedding:
    """A dense, L2-normalised embedding."""

    embedding: list[float]
    is_truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"is_truncated": self.is_truncated, "embedding": self.embedding}


@dataclass(frozen=True)
class EmbeddedChunk:
    """One chunk of a text, ``text[start_offset:end_offset]`` (offsets in characters), and
    its embedding ({token: weight} or a dense vector)."""

    start_offset: int
    end_offset: int
    embedding: dict[str, float] | list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"start_offset": self.start_offset, "end_offset": self.end_offset, "embedding": self.embedding}


@dataclass(frozen=True)
class ChunkedEmbedding:
    """A text enriched chunk by chunk (an endpoint with ``chunking_settings``), as
    Elasticsearch's ``semantic_text`` stores it: one embedding per chunk, in text order.

    ``embedding`` is the list of chunk dicts, so records, Parquet rows and index documents
    carry ``[{"start_offset", "end_offset", "embedding"}, ...]`` in the output field.
    ``is_truncated`` is true only if a chunk itself was cut at the model's limit.
    """

    chunks: tuple[EmbeddedChunk, ...]
    is_truncated: bool = False

    @property
    def embedding(self) -> list[dict[str, Any]]:
        return [chunk.to_dict() for chunk in self.chunks]

    def to_dict(self) -> dict[str, Any]:
        return {"is_truncated": self.is_truncated, "embedding": self.embedding}


InferenceResult = SparseEmbedding | TextEmbedding | ChunkedEmbedding


def require_shape(result: InferenceResult, chunked: bool, document_id: str, target: str) -> None:
    """Refuse a chunked result where whole-text results go (or the reverse): a writer set up
    for the other shape is a configuration error, raised, never written in a shape ``target``
    (the index, the output) was not made for."""
    if isinstance(result, ChunkedEmbedding) != chunked:
        raise ValueError(f"document '{document_id}' has a {type(result).__name__}, but {target} is "
                         f"{'' if chunked else 'not '}chunked: it must match the endpoint's chunking_settings")


def to_inference_response(task_type: str, results: Sequence[InferenceResult]) -> dict[str, Any]:
    """The body Elasticsearch's ``POST _inference/<task_type>/<id>`` would return."""
    return {task_type: [result.to_dict() for result in results]}
