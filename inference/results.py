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
TASK_TYPES = (SPARSE_EMBEDDING, TEXT_EMBEDDING)


@dataclass(frozen=True)
class SparseEmbedding:
    """{token: weight}, every weight > 0, ordered highest weight first."""

    embedding: dict[str, float]
    is_truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"is_truncated": self.is_truncated, "embedding": self.embedding}


@dataclass(frozen=True)
class TextEmbedding:
    """A dense, L2-normalised embedding."""

    embedding: list[float]
    is_truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"is_truncated": self.is_truncated, "embedding": self.embedding}


InferenceResult = SparseEmbedding | TextEmbedding

RESULT_TYPES: dict[str, type] = {SPARSE_EMBEDDING: SparseEmbedding, TEXT_EMBEDDING: TextEmbedding}
"""task type -> its result type."""


def to_inference_response(task_type: str, results: Sequence[InferenceResult]) -> dict[str, Any]:
    """The body Elasticsearch's ``POST _inference/<task_type>/<id>`` would return."""
    return {task_type: [result.to_dict() for result in results]}
