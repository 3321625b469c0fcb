"""Load Hugging Face tokenizers and models quietly and offline-first."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from inference_enrich.inference.errors import ModelLoadError


def load_pretrained(model_class, model_path: str):
    """(tokenizer, model in eval mode) from ``model_path``.

    Local directories load with ``local_files_only`` so a missing file is an immediate,
    clear error instead of a network attempt; the per-weight progress bar is silenced
    because it is noise in pipeline logs.
    """
    hf_logging.disable_progress_bar()
    local = Path(model_path).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=local)
        model = model_class.from_pretrained(model_path, local_files_only=local)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load model from '{model_path}': {error}") from error
    return tokenizer, model.eval()
