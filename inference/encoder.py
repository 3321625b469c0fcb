"""``LocalEncoder``: the start-up every local encoder runtime (``dense.py``, ``sparse.py``)
shares, so the two differ only in their model head and pooling.

Start-up loads tokenizer and model from the model directory (``loading.py``), checks the
endpoint's ``max_sequence_length`` against what the model can take, and builds the
tokenizer step that truncates at it; a subclass then keeps what its ``embed`` needs
(``_start``).
"""

from __future__ import annotations

from typing import Any, Mapping

from inference_enrich.inference.loading import load_pretrained
from inference_enrich.inference.runtime import Truncator, choose_length_limit, model_length_limit


class LocalEncoder:
    """A ``ModelRuntime`` whose model runs in this process (subclasses add ``embed``)."""

    task_type: str
    model_class: Any
    """The ``transformers`` auto class that loads the model (``AutoModel``, ...)."""
    tokenizes_locally = True

    def __init__(
        self,
        model_path: str,
        model_id: str,
        max_sequence_length: int | None = None,
        task_settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        tokenizer, model = load_pretrained(self.model_class, model_path)
        self.max_sequence_length = choose_length_limit(
            max_sequence_length, model_length_limit(model_path, model.config, tokenizer), model_id
        )
        self.tokenize = Truncator(tokenizer, self.max_sequence_length)
        self._pad_id = tokenizer.pad_token_id
        self._start(tokenizer, model, dict(task_settings or {}), **options)

    def _start(self, tokenizer: Any, model: Any, task_settings: dict[str, Any], **options: Any) -> None:
        """Keep what ``embed`` needs of the loaded ``model``; ``options`` are the endpoint's
        service settings this encoder takes (``quantization``)."""
        raise NotImplementedError
