"""Which model directories our own BERT forward pass runs; every other goes to ``transformers``.

Decided from ``config.json`` (model type, architecture, activation, position embeddings,
no quantization, a tied masked-LM head) and the tokenizer's files, reading nothing but JSON,
so the choice costs no import of torch or ``transformers``. The tokenizer must be the one
``transformers`` would build for the same directory: a ``BertTokenizer`` whose
``tokenizer.json`` pipeline (BERT normalizer with the config's lower-casing, accents and
Chinese-character settings, BERT pre-tokenizer, WordPiece, a post-processor adding
``[CLS]``/``[SEP]``) and named special tokens agree with ``tokenizer_config.json``. Where
anything differs, ``transformers`` runs the model: a wrong guess would give wrong embeddings
silently, a fallback only costs start-up time.
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
    if raw.get("quantization_config") or (head == MASKED_LM and raw.get("tie_word_embeddings") is False):
        return None
    if not (path / "model.safetensors").is_file() or not tokenizer_supported(path):
        return None
    try:
        return BertConfig.from_dict(raw)
    except (KeyError, TypeError, ValueError):
        return None


SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
"""The named special tokens of ``tokenizer_config.json`` (what ``all_special_ids`` lists)."""
POST_PROCESSORS = {"TemplateProcessing", "BertProcessing"}


def token_text(value: Any) -> str | None:
    """A special token as ``tokenizer_config.json`` writes it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def tokenizer_supported(path: Path) -> bool:
    """Whether ``tokenizer.json`` is the pipeline ``transformers``' ``BertTokenizer`` builds
    from ``tokenizer_config.json`` for ``path`` (see the module docstring)."""
    try:
        pipeline = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        settings = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        names = json.loads((path / "special_tokens_map.json").read_text(encoding="utf-8")) \
            if (path / "special_tokens_map.json").is_file() else {}
    except (OSError, ValueError):
        return False
    if not all(isinstance(part, dict) for part in (pipeline, settings, names)):
        return False
    if settings.get("tokenizer_class") not in (None, "BertTokenizer", "BertTokenizerFast"):
        return False
    if not token_text(settings.get("cls_token")) or not token_text(settings.get("sep_token")):
        return False
    if any(token_text(value) != token_text(settings.get(key)) for key, value in names.items()):
        return False  # special_tokens_map.json names other tokens than the config
    normalizer = pipeline.get("normalizer") or {}
    post_processor = pipeline.get("post_processor") or {}
    return (normalizer.get("type") == "BertNormalizer"
            and normalizer.get("lowercase") == settings.get("do_lower_case", True)
            and normalizer.get("strip_accents") == settings.get("strip_accents")
            and normalizer.get("handle_chinese_chars") == settings.get("tokenize_chinese_chars", True)
            and (pipeline.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and (pipeline.get("model") or {}).get("type") == "WordPiece"
            and post_processor.get("type") in POST_PROCESSORS)
