"""The vocabulary projection of a SPLADE head, reduced to a per-document max.

This is where ~90% of the FLOPs go, so it has its own modules. Every strategy takes the
hidden states of the real tokens of a batch ([tokens, hidden], documents back to back) and
returns ``relu(max over each document's tokens of (states @ W.T + b))`` as [documents,
vocabulary] (SPLADE keeps only the positive part, and a strategy may use that):

* ``ScreenedProjection`` (``screened_projection.py``, the default where the CPU multiplies
  bf16 natively): a bf16 pass finds the entries that can be positive, with a proven error
  bound, and only those are computed in fp32; equal to ``ExactProjection``.
* ``ExactProjection`` (the default elsewhere) in fp32, equal to the textbook computation up
  to rounding.
* ``Int8Projection`` (opt-in, ``quantization: int8``): int8 weights (one scale per vocabulary
  entry) and int8 activations (one scale per document), integer matmul, and the max taken on
  the int32 accumulators before dequantising: with positive scales the max commutes with
  the scaling, so only [documents, vocabulary] values are ever converted back.

All reduce each [rows, chunk] block while it is still in cache: the exact and screened ones
over fixed tiles of the batch's tokens (documents may share or span tiles), the int8 one per
document.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from inference_enrich.inference.linear import Linear

VOCAB_CHUNK = 4096
"""Vocabulary entries per block of the int8 projection (one document's tokens x 4096)."""

CHUNK = 2048
"""Vocabulary entries per block of the exact projection."""

TILE_ROWS = 256
"""Token rows per matmul of the exact projection. Every call has this many rows (the last
tile is zero-padded), whatever the documents' lengths: oneDNN builds a kernel for each new
shape it sees (~1 ms for these, measured), which per-document calls paid for every new
length; short documents also share one call instead of one each."""

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


@dataclass(frozen=True)
class TilePiece:
    """The rows ``start:end`` of a tile that belong to document ``document``; ``first`` when
    they are the document's first rows (its max starts there, else it is merged in)."""

    start: int
    end: int
    document: int
    first: bool


def tile_pieces(bounds: Bounds, tile_rows: int) -> list[list[TilePiece]]:
    """For each ``tile_rows``-row tile of the concatenated states, the documents' pieces in it."""
    tiles: list[list[TilePiece]] = [[] for _ in range(-(-bounds[-1][1] // tile_rows))] if bounds else []
    for document, (first, last) in enumerate(bounds):
        row = first
        while row < last:
            tile, offset = divmod(row, tile_rows)
            end = min(last, (tile + 1) * tile_rows)
            tiles[tile].append(TilePiece(offset, end - tile * tile_rows, document, row == first))
            row = end
    return tiles


def check_bounds(bounds: Bounds) -> None:
    """A document without tokens has no max (and no tile piece to write its row), so it is
    an error, which the batching turns into that document's dead letter."""
    if not bounds or any(last <= first for first, last in bounds):
        raise ValueError("every document needs at least one token (a tokenizer adds [CLS] and [SEP])")


def tile_states(states: torch.Tensor, bounds: Bounds, buffers: ScratchBuffers,
                dtype: torch.dtype) -> tuple[torch.Tensor, list[list[TilePiece]], int]:
    """``states`` copied (as ``dtype``) into a reused buffer of whole tiles, the last one
    zero-padded, with each tile's document pieces and the tile's row count. A small batch
    (one short query) gets one tile of its own size, rounded to 64 rows so the kernels
    built stay few."""
    check_bounds(bounds)
    tile_rows = min(TILE_ROWS, -(-states.shape[0] // 64) * 64)
    tiles = tile_pieces(bounds, tile_rows)
    padded = buffers.get("states", len(tiles) * tile_rows, states.shape[1], dtype)
    padded[: states.shape[0]] = states
    padded[states.shape[0] :] = 0
    return padded, tiles, tile_rows


def reduce_tiles(padded: torch.Tensor, tiles: list[list[TilePiece]], tile_rows: int,
                 chunks: Sequence[tuple[Callable[[torch.Tensor], torch.Tensor], int]], out: torch.Tensor) -> None:
    """``out[document, chunk's columns] = max over the document's rows of project(tile)``,
    for each (project, width) chunk of the vocabulary in order: each [tile_rows, width]
    block is reduced per document piece while it is still in cache."""
    column = 0
    for project, width in chunks:
        for index, pieces in enumerate(tiles):
            block = project(padded[index * tile_rows : (index + 1) * tile_rows])
            for piece in pieces:
                target = out[piece.document, column : column + width]
                if piece.first:
                    torch.amax(block[piece.start : piece.end], dim=0, out=target)
                else:
                    torch.maximum(target, torch.amax(block[piece.start : piece.end], dim=0), out=target)
        column += width


class ExactProjection:
    """fp32 projection on ``Linear`` (oneDNN where torch has it), over fixed-size tiles of
    the batch's tokens. The bias is added after the max, which is exact (``max(x + b) ==
    max(x) + b`` for a constant b) and saves an add per (token, entry)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        weight, bias = weight.detach(), bias.detach()  # inference only, whatever it was given
        self._chunks = [Linear(weight[start : start + CHUNK], None) for start in range(0, weight.shape[0], CHUNK)]
        self._bias = bias
        self._vocab_size = weight.shape[0]
        self._buffers = ScratchBuffers()

    @torch.inference_mode()
    def positive_max_logits(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        """[documents, vocabulary] ``relu(max logits)``, in a reused buffer: valid until the
        next call from the same thread. Inference mode: the buffer must never record autograd
        history, whoever calls."""
        padded, tiles, tile_rows = tile_states(states, bounds, self._buffers, states.dtype)
        out = self._buffers.get("out", len(bounds), self._vocab_size, states.dtype)
        reduce_tiles(padded, tiles, tile_rows, [(chunk, chunk.out_features) for chunk in self._chunks], out)
        out += self._bias
        return out.relu_()


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

    @torch.inference_mode()
    def positive_max_logits(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        """[documents, vocabulary] ``relu(max logits)``, the max taken on the int32 accumulators."""
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
        logits = maxima.to(torch.float32) * doc_scales[:, None] * weight_scales[None, :] + self._bias
        return logits.relu_()
