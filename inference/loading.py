"""Load Hugging Face tokenizers and models quietly and offline-first."""

from __future__ import annotations

import threading
from pathlib import Path

from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from inference_enrich.inference.errors import ModelLoadError

_LOADING = threading.Lock()
"""One model load at a time per process. ``from_pretrained`` swaps process-wide hooks while
it builds a model (``PreTrainedModel.tie_weights`` and torch's init functions become no-ops
and are put back afterwards); two loads in parallel threads interleave those swaps and can
leave a model with its tied vocabulary head uninitialised. `enrich serve --preload` loads
each model in its own thread, and so can a Beam worker running two endpoints."""


def load_pretrained(model_class, model_path: str):
    """(tokenizer, model in eval mode) from ``model_path``.

    Local directories load with ``local_files_only`` so a missing file is an immediate,
    clear error instead of a network attempt; the per-weight progress bar is silenced
    because it is noise in pipeline logs. Model loads (not tokenizer loads, which patch
    nothing) are serialised by ``_LOADING``.
    """
    hf_logging.disable_progress_bar()
    local = Path(model_path).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=local)  # no global hooks
        model = load_model(model_class, model_path, local_files_only=local)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load model from '{model_path}': {error}") from error
    check_tied_head(model, model_path)
    return tokenizer, model.eval()


def load_model(model_class, model_path: str | Path, **options):
    """``model_class.from_pretrained``, one at a time in this process (``_LOADING``)."""
    with _LOADING:
        return model_class.from_pretrained(model_path, **options)


def check_tied_head(model, model_path: str) -> None:
    """Refuse a model whose config ties its output head to its input embeddings but whose
    head came out untied: its weights are uninitialised memory. ``_LOADING`` prevents that
    among our own loads; another library's ``from_pretrained`` running in the same process
    (a user's step in the same Beam worker) can still cause it, and garbage embeddings must
    fail loudly, not be written."""
    head, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    if getattr(model.config, "tie_word_embeddings", False) and head is not None and inputs is not None \
            and head.weight.data_ptr() != inputs.weight.data_ptr():
        raise ModelLoadError(
            f"model from '{model_path}' loaded with its output head not tied to its input "
            "embeddings (another model was being loaded in this process at the same time?)")
