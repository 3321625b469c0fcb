"""text_embedding: mean pooling over real tokens + L2 normalisation.

That is exactly what sentence-transformers does for all-MiniLM-L6-v2 (Transformer ->
Pooling(mean) -> Normalize), so results match its ``encode`` output (tested to 1e-5).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import AutoModel

from inference_enrich.inference.encoder import LocalEncoder
from inference_enrich.inference.results import TEXT_EMBEDDING, TextEmbedding
from inference_enrich.inference.runtime import TokenizedText, pad_batch


class DenseEncoder(LocalEncoder):
    """Dense sentence embeddings from an encoder model directory."""

    task_type = TEXT_EMBEDDING
    model_class = AutoModel

    def _start(self, tokenizer: Any, model: Any, task_settings: dict[str, Any], **options: Any) -> None:
        self._model = model

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
