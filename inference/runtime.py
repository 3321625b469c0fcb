"""What every local model runtime shares: tokenisation with truncation, padding, the seam.

A runtime has two steps so that callers (the Beam ``InferenceDoFn``, the CLI, a notebook)
can batch as they like in between: ``tokenize`` many texts cheaply, then ``embed`` one batch
of tokenised texts per forward pass (``batching.py`` does that for many texts).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from inference_enrich.inference.errors import ModelLoadError
from inference_enrich.inference.results import InferenceResult

if TYPE_CHECKING:  # torch is imported where a batch is padded, so the Beam-free API imports light
    import torch
    from typing_extensions import TypeIs  # typing.TypeIs is 3.13+

    from inference_enrich.inference.remote.runtime import RemoteOutcome


@dataclass(frozen=True)
class TokenizedText:
    """Token ids of one text, special tokens included, already cut to the model's limit."""

    ids: list[int]
    is_truncated: bool


class Runtime(Protocol):
    """What every runtime, a local model or a remote service, tells its callers: its task
    and how texts go to it. Callers ask this, never the runtime's class, so the core
    (``batching.py``, the Beam DoFn) knows no plugin."""

    task_type: str
    tokenizes_locally: bool
    """True: a ``ModelRuntime`` (``tokenize``, then ``embed`` batches under a token budget);
    False: a ``WholeTextRuntime`` (texts go out whole, by count; the service tokenises)."""


class ModelRuntime(Runtime, Protocol):
    """The seam every local model plugs into."""

    max_sequence_length: int

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        """Tokenise ``texts``, truncating each to ``max_sequence_length``."""

    def embed(self, batch: Sequence[TokenizedText]) -> list[InferenceResult]:
        """One forward pass over ``batch``; results in the same order."""


class WholeTextRuntime(Runtime, Protocol):
    """The seam of a remote service: whole texts in, one result or refusal per text out."""

    def infer(self, texts: Sequence[str]) -> RemoteOutcome:
        """``results[i]`` for ``texts[i]`` and what the requests did (raises
        ``RemoteServiceError`` when the service keeps failing)."""


def takes_whole_texts(runtime: ModelRuntime | WholeTextRuntime) -> TypeIs[WholeTextRuntime]:
    """Whether ``runtime`` is sent whole texts rather than tokenised batches."""
    return not runtime.tokenizes_locally


class Truncator:
    """Tokenises with the model's tokenizer and flags texts cut at the length limit.

    ``encode`` must return each text's ids (special tokens included) cut at ``limit + 1``:
    that tells whether anything was cut without tokenising a whole long document; the
    result then equals Hugging Face truncation at ``limit`` (first ``limit - 2`` word pieces
    between [CLS] and [SEP]).
    """

    def __init__(self, encode: Callable[[list[str]], list[list[int]]], sep_id: int, limit: int) -> None:
        self._encode = encode
        self._limit = limit
        self._sep_id = sep_id

    def __call__(self, texts: Sequence[str]) -> list[TokenizedText]:
        out = []
        for ids in self._encode(list(texts)):
            if len(ids) > self._limit:
                out.append(TokenizedText(ids[: self._limit - 1] + [self._sep_id], True))
            else:
                out.append(TokenizedText(ids, False))
        return out


def pad_batch(batch: Sequence[TokenizedText], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch to its longest member: (input_ids, attention_mask), both [B, L]."""
    import torch

    longest = max(len(item.ids) for item in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, item in enumerate(batch):
        input_ids[row, : len(item.ids)] = torch.tensor(item.ids, dtype=torch.long)
        attention_mask[row, : len(item.ids)] = 1
    return input_ids, attention_mask


def model_length_limit(model_path: str, max_positions: int, tokenizer_limit: int | None) -> int:
    """The longest input the model takes: the position table (``max_positions``), capped by
    the tokenizer's ``model_max_length`` and, for sentence-transformers models, by
    ``sentence_bert_config.json`` (what they were trained and are used with)."""
    limit = max_positions
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < limit:
        limit = tokenizer_limit
    st_config = Path(model_path) / "sentence_bert_config.json"
    if st_config.is_file():
        st_limit = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(st_limit, int) and 0 < st_limit < limit:
            limit = st_limit
    return limit


def choose_length_limit(requested: int | None, model_limit: int, model_id: str) -> int:
    """The endpoint's ``max_sequence_length``, checked against what the model can take."""
    if requested is None:
        return model_limit
    if requested > model_limit:
        raise ModelLoadError(
            f"max_sequence_length {requested} exceeds the limit of model '{model_id}' "
            f"({model_limit} tokens)"
        )
    return requested


class SharedRuntime:
    """A runtime that several threads may call at once: ``tokenize`` and ``embed`` take
    turns under one lock.

    A worker process loads one model (Beam ``Shared``) and several DoFn threads call it
    (``--direct_running_mode=multi_threading``, a runner's worker threads). Hugging Face fast
    tokenizers are not safe to call concurrently: the Python wrapper stores truncation and
    padding settings on the one Rust tokenizer at every call ("RuntimeError: Already
    borrowed" with some versions; with tokenizers 0.23.3 here, concurrent calls with
    different ``max_length`` silently got each other's truncation).

    Why one lock over both steps rather than a tokenizer per thread: tokenising is a few
    percent of the time, so taking turns costs little there; a forward pass already runs on
    all cores through torch's intra-op threads (torch's default), so passes taking turns lose
    little and neither oversubscribe the cores nor hold several batches of activations at
    once. Per-thread tokenizers would keep both of those costs and add a tokenizer per
    thread. (With ``num_threads`` below the core count, use more processes, not threads.)
    """

    tokenizes_locally = True

    def __init__(self, runtime: ModelRuntime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self.task_type = runtime.task_type
        self.max_sequence_length = runtime.max_sequence_length

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        with self._lock:
            return self._runtime.tokenize(texts)

    def embed(self, batch: Sequence[TokenizedText]) -> list[InferenceResult]:
        with self._lock:
            return self._runtime.embed(batch)
