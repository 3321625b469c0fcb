"""Batched inference over many texts: length-aware batches by a token budget, and one
failure per document.

Sorting by length before cutting batches keeps padding (wasted compute in attention) small;
the token budget bounds memory per forward pass whatever the document lengths are. A text
the tokenizer rejects, or a document the model fails on, must cost that document only, so
both steps fall back to one text at a time when a call over many fails.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

from inference_enrich.inference.errors import TextInferenceError
from inference_enrich.inference.results import InferenceResult
from inference_enrich.inference.runtime import ModelRuntime, TokenizedText, WholeTextRuntime, takes_whole_texts

LOG = logging.getLogger(__name__)
_In = TypeVar("_In")
_Out = TypeVar("_Out")


def plan_batches(
    lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int
) -> list[list[int]]:
    """Group positions of ``lengths`` into batches, shortest documents first.

    A batch's padded size (documents x longest document) stays within ``max_batch_tokens``
    and it holds at most ``max_batch_size`` documents; a single document longer than the
    budget gets a batch of its own rather than being refused.
    """
    if max_batch_tokens < 1 or max_batch_size < 1:
        raise ValueError("max_batch_tokens and max_batch_size must be positive")
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        # Sorted ascending, so this document is the longest of the batch if it joins.
        padded = lengths[index] * (len(current) + 1)
        if current and (len(current) >= max_batch_size or padded > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def tokenize_each(runtime: ModelRuntime, texts: Sequence[str]) -> list[TokenizedText | Exception]:
    """``runtime.tokenize(texts)``, except that a text the tokenizer rejects (a lone UTF-16
    surrogate, say) becomes its own exception instead of failing every text with it."""
    try:
        return list[TokenizedText | Exception](runtime.tokenize(texts))
    except Exception as error:
        LOG.warning("tokenizing %d texts failed (%s); tokenizing them singly", len(texts), error)
        return [_alone(runtime.tokenize, text) for text in texts]


def _alone(step: Callable[[list[_In]], Sequence[_Out]], item: _In) -> _Out | Exception:
    """``step`` (a runtime's ``tokenize`` or ``embed``) on ``item`` alone: its one output,
    or the exception it raised, so a failing text costs that text only."""
    try:
        (output,) = step([item])
        return output
    except Exception as error:
        return error


@dataclass(frozen=True)
class EmbeddedBatch:
    """One forward pass: ``results[i]`` belongs to input position ``positions[i]``.

    latency_s: the forward pass's wall time, or None when it failed and its documents were
        retried one by one (some ``results`` are then exceptions).
    """

    positions: list[int]
    results: list[InferenceResult | Exception]
    latency_s: float | None


def embed_batches(
    runtime: ModelRuntime,
    tokenized: Sequence[TokenizedText | Exception | None],
    max_batch_tokens: int,
    max_batch_size: int,
) -> Iterator[EmbeddedBatch]:
    """Embed every tokenized text (positions holding an exception or None are skipped), one
    length-sorted batch per forward pass, yielded as each pass ends."""
    texts = {p: item for p, item in enumerate(tokenized) if isinstance(item, TokenizedText)}
    positions = list(texts)
    lengths = [len(texts[p].ids) for p in positions]
    for batch in plan_batches(lengths, max_batch_tokens, max_batch_size):
        batch_positions = [positions[i] for i in batch]
        items = [texts[p] for p in batch_positions]
        started = time.perf_counter()
        try:
            results: list[InferenceResult | Exception] = list(runtime.embed(items))
            if len(results) != len(items):  # a runtime bug: never pair results by guesswork
                raise RuntimeError(f"the model returned {len(results)} results for {len(items)} texts")
        except Exception as error:  # isolate the document that fails, keep the others
            LOG.warning("batch of %d failed (%s); retrying documents singly", len(items), error)
            yield EmbeddedBatch(batch_positions, [_alone(runtime.embed, item) for item in items], None)
        else:
            yield EmbeddedBatch(batch_positions, results, time.perf_counter() - started)


def infer_texts(
    runtime: ModelRuntime | WholeTextRuntime,
    texts: Sequence[str],
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[InferenceResult]:
    """Tokenise, batch by length and embed ``texts`` (a remote runtime: send them); results
    in input order.

    Raises ``TextInferenceError`` naming the first text that failed (all others are still
    computed first, so the error is the same whatever the batching).
    """
    outcomes: dict[int, InferenceResult | Exception]
    if takes_whole_texts(runtime):
        outcomes = dict(enumerate(runtime.infer(texts).results))
    else:
        tokenized = tokenize_each(runtime, texts)
        outcomes = {position: item for position, item in enumerate(tokenized) if isinstance(item, Exception)}
        for batch in embed_batches(runtime, tokenized, max_batch_tokens, max_batch_size):
            outcomes.update(zip(batch.positions, batch.results, strict=True))
    results: list[InferenceResult] = []
    for position in range(len(texts)):
        result = outcomes[position]
        if isinstance(result, Exception):
            raise TextInferenceError(position, len(texts), result) from result
        results.append(result)
    return results
