"""Tell a broken endpoint from bad documents.

A document the model fails on is one dead letter; but when every document of the first few
forward passes fails with one and the same error and none has succeeded, the fault is the
model (or its service), not the data: dead-lettering the whole corpus and reporting success
would replace a good output with an empty one. ``SystemicFailureGuard`` raises
``SystemicInferenceError`` then, which fails the bundle and so the run (nothing published).
"""

from __future__ import annotations

from typing import Sequence

SYSTEMIC_BATCHES = 3
"""Failed forward passes in a row, from the start, that make a failure systemic."""


class SystemicInferenceError(RuntimeError):
    """Every document of the first batches failed the same way: the endpoint is broken."""


class SystemicFailureGuard:
    """Watches one DoFn instance's forward passes until the first success (or two different
    errors), after which it has nothing more to say."""

    def __init__(self, batches: int = SYSTEMIC_BATCHES) -> None:
        self._batches = batches
        self._failed = 0
        self._error: str | None = None
        self._settled = False

    def observe(self, results: Sequence[object]) -> None:
        """One forward pass's results (an exception for each document that failed)."""
        if self._settled or not results:
            return
        errors = {f"{type(r).__name__}: {r}" for r in results if isinstance(r, Exception)}
        if len(errors) != 1 or not all(isinstance(r, Exception) for r in results) \
                or self._error not in (None, *errors):
            self._settled = True  # something succeeded, or the failures differ: the data's
            return
        (self._error,) = errors
        self._failed += 1
        if self._failed >= self._batches:
            raise SystemicInferenceError(
                f"inference failed on every document of the first {self._failed} batches with the "
                f"same error and nothing succeeded, so the endpoint itself is broken: {self._error}")
