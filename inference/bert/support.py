"""Which model directories our own BERT forward pass runs; every other goes to ``transformers``.

Decided from ``config.json`` (model type, architecture, activation, position embeddings)
and the files present, reading nothing but JSON and the safetensors header, so the choice
costs no import of torch or ``transformers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE = "base"
"""The encoder's last hidden states (``AutoModel``): what dense pooling needs."""
MASKED_LM = "masked_lm"
"""The encoder plus the masked-LM head (``AutoModelForMaskedLM``): what SPLADE needs."""

ARCHITECTURES = {BASE: {"BertModel", "BertForMaskedLM", "BertForPreTraining"}, MASKED_LM: {"BertForMaskedLM"}}
"""``config.json`` architectures whose weights hold what each head needs."""
ACTIVATIONS = {"gelu", "relu"}
"""``hidden_act`` values we compute exactly as ``transformers`` does (erf GELU, ReLU)."""


@dataclass(frozen=True)
class BertConfig:
    """The ``config.json`` fields the forward pass uses."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    max_position_embeddings: int
    vocab_size: int
    tie_word_embeddings: bool

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertConfig:
        return cls(
            hidden_size=int(raw["hidden_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            hidden_act=str(raw.get("hidden_act", "gelu")),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
            vocab_size=int(raw["vocab_size"]),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        )


def read_config(model_path: str | Path) -> dict[str, Any]:
    """``config.json`` of a model directory, or {} when there is none (a hub id)."""
    file = Path(model_path) / "config.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def native_config(model_path: str | Path, head: str) -> BertConfig | None:
    """The config to run ``model_path`` with our forward pass for ``head`` (``BASE`` or
    ``MASKED_LM``), or None when we do not implement it and ``transformers`` must."""
    path = Path(model_path)
    raw = read_config(path)
    if not raw or raw.get("model_type") != "bert" or raw.get("is_decoder") or raw.get("add_cross_attention"):
        return None
    if not set(raw.get("architectures") or []) & ARCHITECTURES[head]:
        return None
    if raw.get("position_embedding_type", "absolute") != "absolute" or raw.get("hidden_act", "gelu") not in ACTIVATIONS:
        return None
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        return None
    try:
        return BertConfig.from_dict(raw)
    except (KeyError, TypeError, ValueError):
        return None
