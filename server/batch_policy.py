"""``BatchPolicy``: how a model's requests are gathered into forward passes (its limits and
waits), and the ``BatchObserver`` each pass is reported to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

BatchObserver = Callable[[str, int, int, float], None]
"""Called after each forward pass with (model id, documents, padded tokens, seconds)."""


@dataclass(frozen=True)
class BatchPolicy:
    """How requests are gathered into forward passes.

    Measured (bench/RESULTS.md, "Pooling by length": 32 clients, MiniLM and SPLADE-tiny,
    this 2-core CPU): with pooling, passes of 1024 padded tokens served more requests/s
    than 2048 (and 2048 had beaten 8192 before pooling); 768 was within the noise of 1024.
    A reorder window of 250 ms gave both more requests/s and a lower p99 than 500 ms: a
    wider window sorts more by length but lets more newcomers overtake, which is what the
    tail is made of. The pool holds ``pool_batches`` passes' worth of texts and tokens:
    enough choice (32 waiting requests fit), and choosing stays cheap; requests beyond it
    wait in the queue, in order.
    """

    max_batch_tokens: int = 1024
    max_batch_size: int = 64
    max_wait_s: float = 0.005
    reorder_window_s: float = 0.25
    pool_batches: int = 8

    def __post_init__(self) -> None:
        if min(self.max_batch_tokens, self.max_batch_size, self.pool_batches) < 1:
            raise ValueError("batch limits must be positive")
        if self.max_wait_s < 0 or self.reorder_window_s < 0:
            raise ValueError("the batch wait and the reorder window must be >= 0")

    def pool_is_full(self, texts: int, tokens: int) -> bool:
        return texts >= self.max_batch_size * self.pool_batches or tokens >= self.max_batch_tokens * self.pool_batches
