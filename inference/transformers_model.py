"""``TransformersEncoder``: a model directory loaded by ``transformers`` (an ``EncoderModel``).

The fallback for every architecture our own forward pass (``inference/bert/``) does not
implement; importing ``transformers`` costs seconds, so it happens only here.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from inference_enrich.inference.encoder_model import Encode
from inference_enrich.inference.loading import load_pretrained
from inference_enrich.inference.runtime import TokenizedText, model_length_limit, pad_batch


class TransformersEncoder:
    """``AutoModel`` (or ``AutoModelForMaskedLM`` with ``masked_lm``) and ``AutoTokenizer``."""

    def __init__(self, model_path: str, masked_lm: bool) -> None:
        from transformers import AutoModel, AutoModelForMaskedLM

        tokenizer, model = load_pretrained(AutoModelForMaskedLM if masked_lm else AutoModel, model_path)
        self._tokenizer: Any = tokenizer
        self._model: Any = model
        self._encoder = model.base_model if masked_lm else model
        self.model_limit = model_length_limit(
            model_path, int(getattr(model.config, "max_position_embeddings", 512)),
            getattr(tokenizer, "model_max_length", None))
        self.sep_token_id = tokenizer.sep_token_id
        self.special_ids = sorted(set(tokenizer.all_special_ids))

    def encoder(self, max_length: int) -> Encode:
        tokenizer = self._tokenizer

        def encode(texts: list[str]) -> list[list[int]]:
            return tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length,
                             return_attention_mask=False, return_token_type_ids=False)["input_ids"]

        return encode

    @torch.inference_mode()
    def hidden_states(self, batch: Sequence[TokenizedText]) -> torch.Tensor:
        input_ids, attention_mask = pad_batch(batch, self._tokenizer.pad_token_id)
        hidden = self._encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        return hidden[attention_mask.bool()]

    def vocabulary(self) -> list[str]:
        size = self._model.get_output_embeddings().weight.shape[0]
        return self._tokenizer.convert_ids_to_tokens(list(range(size)))

    def masked_lm_head(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
        head = self._model.get_output_embeddings()
        return _head_transform(self._model), head.weight.detach(), head.bias.detach()


def _head_transform(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MLM head minus its final vocabulary projection (dense + activation + LayerNorm
    for BERT-style heads), so the projection can be done chunk-wise by ``SparseEncoder``."""
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    transform = getattr(predictions, "transform", None)
    if transform is None:
        raise NotImplementedError(
            f"{type(model).__name__}: only BERT-style masked-LM heads (cls.predictions) are "
            "supported for sparse_embedding"
        )
    return transform
