"""text_embedding: mean pooling over real tokens + L2 normalisation.

That is exactly what sentence-transformers does for all-MiniLM-L6-v2 (Transformer ->
Pooling(mean) -> Normalize), so results match its ``encode`` output (tested to 1e-5).
The encoder hands back the real tokens' states only, documents back to back, so pooling is
one ``index_add_`` per batch (no mask multiply over padding).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from inference_enrich.inference.encoder import LocalEncoder
from inference_enrich.inference.encoder_model import EncoderModel
from inference_enrich.inference.results import TEXT_EMBEDDING, TextEmbedding
from inference_enrich.inference.runtime import TokenizedText


class DenseEncoder(LocalEncoder):
    """Dense sentence embeddings from an encoder model directory."""

    task_type = TEXT_EMBEDDING
    masked_lm = False

    def _start(self, model: EncoderModel, task_settings: dict[str, Any], **options: Any) -> None:
        pass

    @torch.inference_mode()
    def embed(self, batch: Sequence[TokenizedText]) -> list[TextEmbedding]:
        states = self._model.hidden_states(batch)  # [real tokens, hidden]
        lengths = torch.tensor([len(item.ids) for item in batch])
        documents = torch.repeat_interleave(torch.arange(len(batch)), lengths)
        pooled = states.new_zeros((len(batch), states.shape[1])).index_add_(0, documents, states)
        pooled /= lengths.to(states.dtype)[:, None]
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return [
            TextEmbedding(vector, item.is_truncated)
            for vector, item in zip(vectors.tolist(), batch)
        ]
