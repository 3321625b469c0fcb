"""The BERT encoder's forward pass over the real tokens of a batch, in plain torch.

Documents arrive back to back ("packed": [tokens, hidden], no padding), and every dense
layer (attention's input and output projections, the feed-forward pair, LayerNorms) runs on
the packed rows (plus <64 spare rows, see ROW_QUANTUM): padding never costs a matmul. Only attention itself needs documents side
by side, so each layer scatters its query/key/value rows into a padded [documents, longest]
block, runs ``scaled_dot_product_attention`` with a key-padding mask (as ``transformers``'
SDPA attention does) and gathers the real rows back.

The arithmetic is ``transformers``' ``BertModel`` in eval mode (no dropout): embeddings
``word + token type 0 + position``, LayerNorm, then per layer self-attention, dense,
residual + LayerNorm, intermediate dense + activation, dense, residual + LayerNorm.
tests/test_native_bert.py checks it against ``transformers`` on the packaged models.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from inference_enrich.inference.bert.support import BertConfig
from inference_enrich.inference.bert.weights import EncoderWeights, MaskedLMHeadWeights


ROW_QUANTUM = 64
"""The dense layers run on a multiple of this many rows (the spare rows at the end are
ignored): oneDNN builds a kernel per new row count (~0.5-1 ms each for a small model's
shapes, measured), and a job's batches almost never repeat a token count exactly, so
without rounding every batch paid for nine new kernels (SPLADE-tiny) for <1% of spare rows."""


class PackedBatch:
    """Where the packed rows of a batch sit in the padded [documents x longest] block that
    attention works on, and how many spare rows round the dense layers' row count up."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.lengths = list(lengths)
        self.documents = len(self.lengths)
        self.longest = max(self.lengths)
        self.tokens = sum(self.lengths)
        self.spare_rows = -self.tokens % ROW_QUANTUM
        real_positions = torch.cat([torch.arange(n) for n in self.lengths])
        self.positions = torch.cat([real_positions, torch.zeros(self.spare_rows, dtype=torch.long)])
        self.padded = self.tokens != self.documents * self.longest
        spare = torch.zeros(self.spare_rows, dtype=torch.long)  # spare rows copy block row 0; never read
        if self.padded:
            starts = torch.arange(self.documents) * self.longest
            self.rows = torch.repeat_interleave(starts, torch.tensor(self.lengths)) + real_positions
            key_mask = torch.arange(self.longest)[None, :] < torch.tensor(self.lengths)[:, None]
            self.padding_rows = (~key_mask).flatten().nonzero().squeeze(1)  # the block's other rows
            self.key_mask: torch.Tensor | None = key_mask[:, None, None, :]  # [docs, 1, 1, longest]
            self.gather_rows: torch.Tensor | None = torch.cat([self.rows, spare])
        else:
            self.key_mask = None
            self.gather_rows = torch.cat([torch.arange(self.tokens), spare]) if self.spare_rows else None


class BertEncoder:
    """Packed token ids in, packed last hidden states out."""

    def __init__(self, config: BertConfig, weights: EncoderWeights) -> None:
        self._config = config
        self._weights = weights
        self._heads = config.num_attention_heads
        self._head_size = config.hidden_size // config.num_attention_heads

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """[tokens, hidden] states of the packed ``ids`` of ``batch``'s documents."""
        weights, eps, hidden = self._weights, self._config.layer_norm_eps, self._config.hidden_size
        ids = torch.cat([ids, ids.new_zeros(batch.spare_rows)])
        states = weights.word_embeddings[ids] + weights.token_type_zero
        states += weights.position_embeddings[batch.positions]
        states = F.layer_norm(states, (hidden,), *weights.embedding_norm, eps)
        for layer in weights.layers:
            context = self._attention(layer.qkv(states), batch)
            attended = layer.attention_out(context)
            states = F.layer_norm(attended + states, (hidden,), *layer.attention_norm, eps)
            out = layer.output(layer.intermediate(states))
            states = F.layer_norm(out + states, (hidden,), *layer.output_norm, eps)
        return states[: batch.tokens]

    def _attention(self, qkv: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """Multi-head self-attention of each document over its own tokens: [tokens + spare
        rows, hidden]."""
        width = qkv.shape[1]
        if batch.padded:
            # Zeroing only the padding rows, not the whole block: 1.7% of a dense pass. They
            # must be finite: masked keys still meet their values with weight 0, and 0 * NaN
            # is NaN.
            block = qkv.new_empty((batch.documents * batch.longest, width))
            block[batch.padding_rows] = 0
            block[batch.rows] = qkv[: batch.tokens]
        else:
            block = qkv[: batch.tokens]
        q, k, v = (
            block.view(batch.documents, batch.longest, 3, self._heads, self._head_size).permute(2, 0, 3, 1, 4)
        )
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=batch.key_mask)
        context = context.transpose(1, 2).reshape(batch.documents * batch.longest, width // 3)
        return context if batch.gather_rows is None else context[batch.gather_rows]


class MaskedLMHeadTransform:
    """The masked-LM head before its vocabulary projection: dense, activation, LayerNorm."""

    def __init__(self, config: BertConfig, head: MaskedLMHeadWeights) -> None:
        self._head = head
        self._hidden = config.hidden_size
        self._eps = config.layer_norm_eps

    @torch.inference_mode()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        head = self._head
        return F.layer_norm(head.transform(states), (self._hidden,), *head.transform_norm, self._eps)
