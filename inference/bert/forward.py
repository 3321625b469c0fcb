"""The BERT encoder's forward pass over the real tokens of a batch, in plain torch.

Documents arrive back to back ("packed": [tokens, hidden], no padding), and every dense
layer (attention's input and output projections, the feed-forward pair, LayerNorms) runs on
the packed rows: padding never costs a matmul. Only attention itself needs documents side
by side, so each layer scatters its query/key/value rows into a padded [documents, longest]
block, runs ``scaled_dot_product_attention`` with a key-padding mask (as ``transformers``'
SDPA attention does) and gathers the real rows back.

The arithmetic is ``transformers``' ``BertModel`` in eval mode (no dropout): embeddings
``word + token type 0 + position``, LayerNorm, then per layer self-attention, dense,
residual + LayerNorm, intermediate dense + activation, dense, residual + LayerNorm.
tests/test_native_bert.py checks it against ``transformers`` on the packaged models.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from inference_enrich.inference.bert.support import BertConfig
from inference_enrich.inference.bert.weights import EncoderWeights, MaskedLMHeadWeights

ACTIVATION: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu}
"""``hidden_act`` -> function; ``gelu`` is the exact (erf) GELU, as in ``transformers``."""


class PackedBatch:
    """Where the packed rows of a batch sit in the padded [documents x longest] block."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.lengths = list(lengths)
        self.documents = len(self.lengths)
        self.longest = max(self.lengths)
        self.tokens = sum(self.lengths)
        self.positions = torch.cat([torch.arange(n) for n in self.lengths])
        self.padded = self.tokens != self.documents * self.longest
        if self.padded:
            starts = torch.arange(self.documents) * self.longest
            self.rows = torch.repeat_interleave(starts, torch.tensor(self.lengths)) + self.positions
            key_mask = torch.arange(self.longest)[None, :] < torch.tensor(self.lengths)[:, None]
            self.key_mask: torch.Tensor | None = key_mask[:, None, None, :]  # [docs, 1, 1, longest]
        else:
            self.key_mask = None

    def document_index(self) -> torch.Tensor:
        """For each packed row, the position of its document in the batch."""
        return torch.repeat_interleave(torch.arange(self.documents), torch.tensor(self.lengths))


class BertEncoder:
    """Packed token ids in, packed last hidden states out."""

    def __init__(self, config: BertConfig, weights: EncoderWeights) -> None:
        self._config = config
        self._weights = weights
        self._activation = ACTIVATION[config.hidden_act]
        self._heads = config.num_attention_heads
        self._head_size = config.hidden_size // config.num_attention_heads

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """[tokens, hidden] states of the packed ``ids`` of ``batch``'s documents."""
        weights, eps, hidden = self._weights, self._config.layer_norm_eps, self._config.hidden_size
        states = weights.word_embeddings[ids] + weights.token_type_zero
        states += weights.position_embeddings[batch.positions]
        states = F.layer_norm(states, (hidden,), *weights.embedding_norm, eps)
        for layer in weights.layers:
            qkv = torch.addmm(layer.qkv_bias, states, layer.qkv_t)
            context = self._attention(qkv, batch)
            attended = torch.addmm(layer.attention_out_bias, context, layer.attention_out_t)
            states = F.layer_norm(attended + states, (hidden,), *layer.attention_norm, eps)
            inner = self._activation(torch.addmm(layer.intermediate_bias, states, layer.intermediate_t))
            out = torch.addmm(layer.output_bias, inner, layer.output_t)
            states = F.layer_norm(out + states, (hidden,), *layer.output_norm, eps)
        return states

    def _attention(self, qkv: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """Multi-head self-attention of each document over its own tokens: [tokens, hidden]."""
        width = qkv.shape[1]
        if batch.padded:
            block = qkv.new_zeros((batch.documents * batch.longest, width))
            block[batch.rows] = qkv
        else:
            block = qkv
        q, k, v = (
            block.view(batch.documents, batch.longest, 3, self._heads, self._head_size).permute(2, 0, 3, 1, 4)
        )
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=batch.key_mask)
        context = context.transpose(1, 2).reshape(batch.documents * batch.longest, width // 3)
        return context[batch.rows] if batch.padded else context


class MaskedLMHeadTransform:
    """The masked-LM head before its vocabulary projection: dense, activation, LayerNorm."""

    def __init__(self, config: BertConfig, head: MaskedLMHeadWeights) -> None:
        self._head = head
        self._activation = ACTIVATION[config.hidden_act]
        self._hidden = config.hidden_size
        self._eps = config.layer_norm_eps

    @torch.inference_mode()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        head = self._head
        transformed = self._activation(torch.addmm(head.transform_bias, states, head.transform_t))
        return F.layer_norm(transformed, (self._hidden,), *head.transform_norm, self._eps)
