"""Length-aware batching by a token budget.

Sorting by length before cutting batches keeps padding (wasted compute in attention) small;
the token budget bounds memory per forward pass whatever the document lengths are.
"""

from __future__ import annotations

from typing import Sequence


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
