"""``EncoderModel``: what the dense and sparse runtimes need of a loaded encoder, and the one
place that picks who computes it.

Our own BERT forward pass (``inference/bert/``) runs the BERT models it implements (the two
packaged ones among them) without importing ``transformers``; any other architecture is
loaded by ``transformers`` (``transformers_model.py``). The choice is made from
``config.json`` alone (``bert.support.native_config``), so both runtimes stay unaware of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from inference_enrich.inference.runtime import TokenizedText

if TYPE_CHECKING:
    import torch

Encode = Callable[[list[str]], list[list[int]]]
"""Texts -> token ids with special tokens, cut at the length the encoder was asked for."""


class EncoderModel(Protocol):
    """A loaded encoder model and its tokenizer."""

    model_limit: int
    """The longest input the model takes (``runtime.model_length_limit``)."""
    sep_token_id: int
    special_ids: list[int]

    def encoder(self, max_length: int) -> Encode:
        """The tokenizer step, cutting every text at ``max_length`` ids."""

    def hidden_states(self, batch: Sequence[TokenizedText]) -> torch.Tensor:
        """Last hidden states of the real tokens of ``batch``, documents back to back:
        [sum of lengths, hidden]."""

    def vocabulary(self) -> list[str]:
        """Token text of every id of the output vocabulary."""

    def masked_lm_head(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
        """(head transform, vocabulary projection weight [vocabulary, hidden], its bias):
        the masked-LM head split so the projection can be done chunk-wise."""


def load_encoder_model(model_path: str, masked_lm: bool) -> EncoderModel:
    """Our BERT forward pass when it implements the model at ``model_path``, else
    ``transformers``; ``masked_lm``: the masked-LM head is needed (sparse)."""
    from inference_enrich.inference.bert.support import BASE, MASKED_LM, native_config

    config = native_config(model_path, MASKED_LM if masked_lm else BASE)
    if config is not None:
        from inference_enrich.inference.bert.model import NativeBert

        return NativeBert(model_path, config, masked_lm)
    from inference_enrich.inference.transformers_model import TransformersEncoder

    return TransformersEncoder(model_path, masked_lm)
