"""Token-budget batching: every document exactly once, budgets kept, short ones together."""

from __future__ import annotations

import random

import pytest

from inference_enrich.inference.batching import plan_batches


@pytest.mark.parametrize("seed", range(5))
def test_every_document_once_within_budget(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(3, 512) for _ in range(500)]
    batches = plan_batches(lengths, max_batch_tokens=2048, max_batch_size=32)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        assert len(batch) <= 32
        assert max(lengths[i] for i in batch) * len(batch) <= 2048
    # Length-sorted: batches do not interleave lengths, so padding stays small.
    longest = [max(lengths[i] for i in batch) for batch in batches]
    shortest = [min(lengths[i] for i in batch) for batch in batches]
    assert all(a <= b for a, b in zip(longest, shortest[1:]))


def test_oversized_document_gets_its_own_batch():
    assert plan_batches([10, 5000, 10], max_batch_tokens=100, max_batch_size=8) == [[0, 2], [1]]


def test_empty_and_invalid():
    assert plan_batches([], 100, 8) == []
    with pytest.raises(ValueError):
        plan_batches([1], 0, 8)
