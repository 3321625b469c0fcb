"""``NativeBert``: a BERT model directory loaded for our own forward pass (an ``EncoderModel``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from inference_enrich.inference.bert.forward import BertEncoder, MaskedLMHeadTransform, PackedBatch
from inference_enrich.inference.bert.support import BertConfig
from inference_enrich.inference.bert.tokenizer import FastTokenizer
from inference_enrich.inference.bert.weights import Checkpoint, load_encoder, load_masked_lm_head
from inference_enrich.inference.encoder_model import Encode
from inference_enrich.inference.errors import ModelLoadError
from inference_enrich.inference.runtime import TokenizedText, model_length_limit


class NativeBert:
    """Tokenizer (``tokenizer.json``) and weights (``model.safetensors``) of a BERT model."""

    def __init__(self, model_path: str, config: BertConfig, masked_lm: bool) -> None:
        path = Path(model_path)
        try:
            tokenizer = FastTokenizer(path)
            checkpoint = Checkpoint(path / "model.safetensors")
        except Exception as error:  # unreadable JSON, tokenizers' and safetensors' own errors (an LFS pointer)
            raise ModelLoadError(f"cannot load model from '{model_path}': {error}") from error
        weights = load_encoder(checkpoint, config)
        self._encoder = BertEncoder(config, weights)
        self._head = load_masked_lm_head(checkpoint, config, weights) if masked_lm else None
        self._config = config
        self._model_path = model_path
        self._tokenizer = tokenizer
        self.model_limit = model_length_limit(model_path, config.max_position_embeddings, tokenizer.model_max_length)
        sep = tokenizer.sep_token_id
        if sep is None:
            raise ModelLoadError(f"model at '{model_path}': its tokenizer has no [SEP] token")
        self.sep_token_id = sep
        self.special_ids = tokenizer.all_special_ids

    def encoder(self, max_length: int) -> Encode:
        tokenizer = FastTokenizer(self._model_path, max_length)  # its own: truncation is per tokenizer
        return tokenizer.encode

    def hidden_states(self, batch: Sequence[TokenizedText]) -> torch.Tensor:
        ids = torch.tensor([i for item in batch for i in item.ids], dtype=torch.long)
        return self._encoder(ids, PackedBatch([len(item.ids) for item in batch]))

    def vocabulary(self) -> list[str]:
        return self._tokenizer.vocabulary(self._config.vocab_size)

    def masked_lm_head(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
        if self._head is None:
            raise ValueError("this model was loaded without its masked-LM head")
        return MaskedLMHeadTransform(self._config, self._head), self._head.decoder, self._head.decoder_bias
