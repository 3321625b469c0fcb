"""text_embedding: mean pooling over real tokens + L2 normalisation.

That is exactly what sentence-transformers does for all-MiniLM-L6-v2 (Transformer ->
Pooling(mean) -> Normalize), so results match its ``encode`` output (tested to 1e-5).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from transformers import AutoModel

from inference_enrich.inference.loading import load_pretrained
from inference_enrich.inference.results import TEXT_EMBEDDING, TextEmbedding
from inference_enrich.inference.runtime import (
    TokenizedText,
    Truncator,
    choose_length_limit,
    model_length_limit,
    pad_batch,
)


class DenseEncoder:
    """Dense sentence embeddings from an encoder model directory."""

    task_type = TEXT_EMBEDDING
    tokenizes_locally = True

    def __init__(
        self,
        model_path: str,
        model_id: str,
        max_sequence_length: int | None = None,
        task_settings: Mapping[str, Any] | None = None,
    ) -> None:
        tokenizer, self._model = load_pretrained(AutoModel, model_path)
        self.max_sequence_length = choose_length_limit(
            max_sequence_length,
            model_length_limit(model_path, self._model.config, tokenizer),
            model_id,
        )
        self.tokenize = Truncator(tokenizer, self.max_sequence_length)
        self._pad_id = tokenizer.pad_token_id

    @torch.inference_mode()
    def embed(self, batch: Sequence[TokenizedText]) -> list[TextEmbedding]:
        input_ids, attention_mask = pad_batch(batch, self._pad_id)
        hidden = self._model(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return [
            TextEmbedding(vector, item.is_truncated)
            for vector, item in zip(vectors.tolist(), batch)
        ]
