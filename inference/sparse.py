"""sparse_embedding: SPLADE pooling over a masked-LM head (what ELSER-style endpoints return).

The textbook computation is ``w = max over positions of log(1 + relu(logits))`` with
``logits = MLM head(encoder(text))`` of shape [tokens, vocabulary]. Almost all of the work
is the vocabulary projection (hidden -> 30,522), so this runtime computes the same numbers
with less waste:

* only real tokens are projected (padding never reaches the projection);
* ``log1p(relu(.))`` is monotone, so the per-document max is taken over raw logits first
  and the transform is applied once per (document, vocabulary entry);
* the projection runs over cache-sized tiles of tokens x vocabulary chunks, each block
  reduced to its max at once, so the full [tokens, vocabulary] logits tensor is never
  allocated (see ``projection.py``, which also holds the opt-in int8 fast mode);
* only the positive part survives ``relu``, so where the CPU multiplies bf16 natively a
  bf16 pass with a proven error margin finds the few hundred entries per document that can
  be positive, and only those are computed in fp32 (``screened_projection.py``).

The default result is identical to the textbook order up to float rounding (tested to 1e-4).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from inference_enrich.inference.encoder import LocalEncoder
from inference_enrich.inference.encoder_model import EncoderModel
from inference_enrich.inference.projection import Int8Projection, document_bounds
from inference_enrich.inference.screened_projection import default_projection
from inference_enrich.inference.results import SPARSE_EMBEDDING, SparseEmbedding, prune
from inference_enrich.inference.runtime import TokenizedText


PROJECTIONS = {"none": default_projection, "int8": Int8Projection}
"""``service_settings.quantization`` -> projection strategy (``projection.py``)."""


class SparseEncoder(LocalEncoder):
    """SPLADE sparse embeddings from a ``*ForMaskedLM`` model directory."""

    task_type = SPARSE_EMBEDDING
    masked_lm = True

    def _start(self, model: EncoderModel, task_settings: dict[str, Any], quantization: str = "none",
               **options: Any) -> None:
        self._head_transform, weight, bias = model.masked_lm_head()
        self._projection = PROJECTIONS[quantization](weight, bias)
        self._vocabulary = model.vocabulary()
        self._special_ids = torch.tensor(model.special_ids, dtype=torch.long)
        self._top_k: int | None = task_settings.get("top_k")
        self._min_weight: float = float(task_settings.get("min_weight", 0.0))

    @torch.inference_mode()
    def embed(self, batch: Sequence[TokenizedText]) -> list[SparseEmbedding]:
        states = self._head_transform(self._model.hidden_states(batch))  # [real tokens, hidden]
        bounds = document_bounds([len(item.ids) for item in batch])
        weights = self._projection.positive_max_logits(states, bounds).log1p_()  # in place
        weights[:, self._special_ids] = 0.0
        return [self._to_result(row, item.is_truncated) for row, item in zip(weights, batch)]

    def _to_result(self, row: torch.Tensor, is_truncated: bool) -> SparseEmbedding:
        ids = torch.nonzero(row > 0).squeeze(1)
        values = row[ids]
        order = torch.argsort(values, descending=True, stable=True)
        vocabulary = self._vocabulary
        embedding = {
            vocabulary[i]: w for i, w in zip(ids[order].tolist(), values[order].tolist())
        }
        return SparseEmbedding(prune(embedding, self._min_weight, self._top_k), is_truncated)

