"""The tensors of a BERT checkpoint (``model.safetensors``), named for the forward pass.

Checkpoints spell the same weight several ways: with or without a ``bert.`` prefix (a
``BertForMaskedLM`` against a ``BertModel``), and LayerNorm parameters as ``weight``/``bias``
or, in older ones, ``gamma``/``beta``. ``Checkpoint`` resolves those, so a missing weight
is one clear error naming it.

The file is memory-mapped (``safe_open``); each layer's query, key and value weights are
concatenated once into one [3 x hidden, hidden] matrix, so attention's input projection is a
single matmul. Dense layers are loaded as ``Linear`` (``linear.py``), each with the activation
that follows it, so the kernel can apply it in the same pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from inference_enrich.inference.linear import Linear
from inference_enrich.inference.bert.support import BertConfig
from inference_enrich.inference.errors import ModelLoadError

_ALIASES = {"weight": ("weight", "gamma"), "bias": ("bias", "beta")}


class Checkpoint:
    """Name -> tensor over an open safetensors file, trying the known spellings."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            self._tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        self._prefix = "bert." if any(name.startswith("bert.") for name in self._tensors) else ""
        self._path = path

    def get(self, name: str, prefixed: bool = True) -> torch.Tensor:
        """The tensor ``name`` (``encoder.layer.0.attention.self.query.weight``, ...)."""
        tensor = self.find(name, prefixed)
        if tensor is None:
            raise ModelLoadError(f"{self._path}: no weight '{name}'")
        return tensor

    def find(self, name: str, prefixed: bool = True) -> torch.Tensor | None:
        """The tensor ``name``, or None when the checkpoint has none."""
        stem, _, last = name.rpartition(".")
        prefix = self._prefix if prefixed else ""
        for spelling in _ALIASES.get(last, (last,)) if "LayerNorm" in stem else (last,):
            tensor = self._tensors.get(f"{prefix}{stem}.{spelling}")
            if tensor is not None:
                return tensor.to(torch.float32)
        return None


@dataclass(frozen=True)
class LayerWeights:
    """One encoder layer: its four dense layers (the intermediate one with the model's
    activation) and two LayerNorms."""

    qkv: Linear
    attention_out: Linear
    attention_norm: tuple[torch.Tensor, torch.Tensor]
    intermediate: Linear
    output: Linear
    output_norm: tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EncoderWeights:
    """Embedding tables and layers of the encoder."""

    word_embeddings: torch.Tensor
    position_embeddings: torch.Tensor
    token_type_zero: torch.Tensor
    embedding_norm: tuple[torch.Tensor, torch.Tensor]
    layers: tuple[LayerWeights, ...]


@dataclass(frozen=True)
class MaskedLMHeadWeights:
    """The masked-LM head: transform (dense, activation, LayerNorm), then the vocabulary
    projection ``decoder`` [vocabulary, hidden] and its bias."""

    transform: Linear
    transform_norm: tuple[torch.Tensor, torch.Tensor]
    decoder: torch.Tensor
    decoder_bias: torch.Tensor


def _norm(checkpoint: Checkpoint, name: str, prefixed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    return checkpoint.get(f"{name}.weight", prefixed), checkpoint.get(f"{name}.bias", prefixed)


def _linear(checkpoint: Checkpoint, name: str, activation: str | None = None, prefixed: bool = True) -> Linear:
    return Linear(checkpoint.get(f"{name}.weight", prefixed), checkpoint.get(f"{name}.bias", prefixed), activation)


def load_encoder(checkpoint: Checkpoint, config: BertConfig) -> EncoderWeights:
    """The encoder's weights from ``checkpoint``."""
    layers = []
    for index in range(config.num_hidden_layers):
        layer = f"encoder.layer.{index}"
        attention = f"{layer}.attention.self"
        qkv = torch.cat([checkpoint.get(f"{attention}.{part}.weight") for part in ("query", "key", "value")])
        qkv_bias = torch.cat([checkpoint.get(f"{attention}.{part}.bias") for part in ("query", "key", "value")])
        layers.append(LayerWeights(
            qkv=Linear(qkv, qkv_bias),
            attention_out=_linear(checkpoint, f"{layer}.attention.output.dense"),
            attention_norm=_norm(checkpoint, f"{layer}.attention.output.LayerNorm"),
            intermediate=_linear(checkpoint, f"{layer}.intermediate.dense", config.hidden_act),
            output=_linear(checkpoint, f"{layer}.output.dense"),
            output_norm=_norm(checkpoint, f"{layer}.output.LayerNorm"),
        ))
    return EncoderWeights(
        word_embeddings=checkpoint.get("embeddings.word_embeddings.weight"),
        position_embeddings=checkpoint.get("embeddings.position_embeddings.weight"),
        token_type_zero=checkpoint.get("embeddings.token_type_embeddings.weight")[0].clone(),
        embedding_norm=_norm(checkpoint, "embeddings.LayerNorm"),
        layers=tuple(layers),
    )


def load_masked_lm_head(checkpoint: Checkpoint, config: BertConfig, encoder: EncoderWeights) -> MaskedLMHeadWeights:
    """The masked-LM head (``cls.predictions``); the decoder is the word-embedding table
    when the config ties them (as ``transformers`` ties them), else its own weight."""
    head = "cls.predictions"
    decoder = None if config.tie_word_embeddings else checkpoint.find(f"{head}.decoder.weight", prefixed=False)
    bias = checkpoint.find(f"{head}.bias", prefixed=False)
    if bias is None:
        bias = checkpoint.get(f"{head}.decoder.bias", prefixed=False)
    return MaskedLMHeadWeights(
        transform=_linear(checkpoint, f"{head}.transform.dense", config.hidden_act, prefixed=False),
        transform_norm=_norm(checkpoint, f"{head}.transform.LayerNorm", prefixed=False),
        decoder=encoder.word_embeddings if decoder is None else decoder,
        decoder_bias=bias,
    )
