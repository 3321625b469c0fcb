"""The vocabulary projection of a SPLADE head, reduced to a per-document max.

This is where ~90% of the FLOPs go, so it has its own module. Both strategies take the
hidden states of the real tokens of a batch ([tokens, hidden], documents back to back) and
return ``max over each document's tokens of (states @ W.T + b)`` as [documents, vocabulary]:

* ``ExactProjection`` (default) in fp32, equal to the textbook computation up to rounding.
* ``Int8Projection`` (opt-in, ``quantization: int8``): int8 weights (one scale per vocabulary
  entry) and int8 activations (one scale per document), integer matmul, and the max taken on
  the int32 accumulators before dequantising: with positive scales the max commutes with
  the scaling, so only [documents, vocabulary] values are ever converted back.

Both work document by document within a vocabulary chunk so each [tokens, chunk] block is
reduced while still in cache, into a scratch block reused for the whole batch.
"""

from __future__ import annotations

import threading
from typing import Sequence

import torch

VOCAB_CHUNK = 4096
"""Vocabulary entries per block. With one document's tokens per block (at most 512 x 4096
fp32 = 8 MB, usually far less) the block is reduced while still in cache; on this project's
CPUs this ran at ~2x the throughput of projecting the whole batch at once."""

Bounds = Sequence[tuple[int, int]]


def document_bounds(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) row of each document in the concatenated states."""
    bounds, start = [], 0
    for length in lengths:
        bounds.append((start, start + length))
        start += length
    return bounds


class ScratchBuffers:
    """Per-thread buffers reused from batch to batch, so the multi-megabyte scratch and
    output blocks are not allocated, page-faulted and freed again for every batch (see also
    ``memory.py``). Per thread, because a Beam worker may run several DoFn threads over one
    shared runtime."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, name: str, rows: int, columns: int, dtype: torch.dtype) -> torch.Tensor:
        """A contiguous [rows, columns] view of a buffer that grows only when it must."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        buffer = buffers.get((name, columns, dtype))
        if buffer is None or buffer.shape[0] < rows:
            buffer = torch.empty((max(rows, 64), columns), dtype=dtype)
            buffers[(name, columns, dtype)] = buffer
        return buffer[:rows]


class ExactProjection:
    """fp32 projection; the bias is added after the max, which is exact (``max(x + b) ==
    max(x) + b`` for a constant b) and saves an add per (token, entry)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self._chunks = [
            weight[start : start + VOCAB_CHUNK].T.contiguous()
            for start in range(0, weight.shape[0], VOCAB_CHUNK)
        ]
        self._bias = bias
        self._vocab_size = weight.shape[0]
        self._buffers = ScratchBuffers()

    def max_logits(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        """[documents, vocabulary] maxima, in a reused buffer: valid until the next call
        from the same thread."""
        out = self._buffers.get("out", len(bounds), self._vocab_size, states.dtype)
        longest = max(last - first for first, last in bounds)
        column = 0
        for weight_t in self._chunks:
            width = weight_t.shape[1]
            scratch = self._buffers.get("scratch", longest, width, states.dtype)
            for row, (first, last) in enumerate(bounds):
                block = scratch[: last - first]
                torch.mm(states[first:last], weight_t, out=block)
                torch.amax(block, dim=0, out=out[row, column : column + width])
            column += width
        out += self._bias
        return out


class Int8Projection:
    """Symmetric int8 projection: per-entry weight scales, per-document activation scales."""

    MIN_ROWS = 17
    """``torch._int_mm`` wants more than 16 rows; a shorter document has its rows repeated,
    which cannot change a max."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self._chunks = [
            (quantized[start : start + VOCAB_CHUNK].T.contiguous(), scales[start : start + VOCAB_CHUNK])
            for start in range(0, weight.shape[0], VOCAB_CHUNK)
        ]
        self._bias = bias
        self._vocab_size = weight.shape[0]

    def max_logits(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        maxima = torch.empty((len(bounds), self._vocab_size), dtype=torch.int32)
        doc_scales = torch.empty(len(bounds), dtype=torch.float32)
        quantized_docs = []
        for row, (first, last) in enumerate(bounds):
            block = states[first:last]
            scale = block.abs().amax().clamp(min=1e-12) / 127.0
            doc_scales[row] = scale
            q = torch.round(block / scale).clamp(-127, 127).to(torch.int8)
            if q.shape[0] < self.MIN_ROWS:  # repeat rows: a duplicate cannot change a max
                q = q.repeat((self.MIN_ROWS + q.shape[0] - 1) // q.shape[0], 1)
            quantized_docs.append(q)
        longest = max(q.shape[0] for q in quantized_docs)
        column = 0
        for weight_t, _ in self._chunks:
            width = weight_t.shape[1]
            scratch = torch.empty((longest, width), dtype=torch.int32)
            for row, q in enumerate(quantized_docs):
                block = scratch[: q.shape[0]]
                torch._int_mm(q, weight_t, out=block)
                torch.amax(block, dim=0, out=maxima[row, column : column + width])
            column += width
        weight_scales = torch.cat([scales for _, scales in self._chunks])
        return maxima.to(torch.float32) * doc_scales[:, None] * weight_scales[None, :] + self._bias


PROJECTIONS: dict[str, type[ExactProjection] | type[Int8Projection]] = {"none": ExactProjection, "int8": Int8Projection}
"""``service_settings.quantization`` -> projection strategy."""
