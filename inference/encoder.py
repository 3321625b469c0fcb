"""``LocalEncoder``: the start-up every local encoder runtime (``dense.py``, ``sparse.py``)
shares, so the two differ only in their model head and pooling.

Start-up loads tokenizer and model from the model directory (``encoder_model.py``: our own
BERT forward pass, or ``transformers`` for other architectures), checks the endpoint's
``max_sequence_length`` against what the model can take, and builds the tokenizer step that
truncates at it; a subclass then keeps what its ``embed`` needs (``_start``).
"""

from __future__ import annotations

from typing import Any, Mapping

from inference_enrich.inference.encoder_model import EncoderModel, load_encoder_model
from inference_enrich.inference.runtime import Truncator, choose_length_limit


class LocalEncoder:
    """A ``ModelRuntime`` whose model runs in this process (subclasses add ``embed``)."""

    task_type: str
    masked_lm: bool
    """Whether the model's masked-LM head is needed (sparse) or only its encoder (dense)."""
    tokenizes_locally = True

    def __init__(
        self,
        model_path: str,
        model_id: str,
        max_sequence_length: int | None = None,
        task_settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        model = load_encoder_model(model_path, self.masked_lm)
        self.max_sequence_length = choose_length_limit(max_sequence_length, model.model_limit, model_id)
        # One more id than the limit: Truncator tells a cut text from one that just fits.
        self.tokenize = Truncator(model.encoder(self.max_sequence_length + 1), model.sep_token_id,
                                  self.max_sequence_length)
        self._model = model
        self._start(model, dict(task_settings or {}), **options)

    def _start(self, model: EncoderModel, task_settings: dict[str, Any], **options: Any) -> None:
        """Keep what ``embed`` needs of the loaded ``model``; ``options`` are the endpoint's
        service settings this encoder takes (``quantization``)."""
        raise NotImplementedError
