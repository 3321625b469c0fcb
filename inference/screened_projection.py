"""``ScreenedProjection``: the exact SPLADE maxima for about 60% of the fp32 projection's time.

SPLADE keeps ``relu(max logit)`` per (document, vocabulary entry), and of a document's 30,522
entries only a few hundred are positive (163 on average over bench/corpus.py's documents),
yet the fp32 projection computes every (token, entry) product. This strategy runs the
projection twice, cheaply and then exactly:

1. **Screen** the whole vocabulary in bf16 on oneDNN (~1.9x fp32's speed where the CPU
   multiplies bf16 natively, measured in bench/RESULTS.md), with every entry's bias raised
   by a margin larger than the bf16 error can be: an entry none of whose screened values is
   non-negative is certainly not positive in fp32, and its weight is 0 either way.
2. **Compute** each document's remaining candidates (~450) in fp32 on the fp32 weights.

The result equals ``ExactProjection``'s up to fp32 rounding (the two sum in different
orders); no weight is approximated. It pays only while candidates are few: a head whose
entries are mostly positive, or a batch with a non-finite state (every entry is then a
candidate), runs ~2.5x slower than ``ExactProjection`` (measured by a breaker), correctly.

Why the margin holds, for a token ``h`` and an entry ``w`` (``n`` = hidden size terms). bf16
rounds each operand to 8 significant bits (relative error <= 2^-8), so a product is off by
at most (2^-7 + 2^-16)|h_i||w_i|; oneDNN accumulates the exact products in fp32 (error <=
n 2^-24 sum|h_i w_i|, as does the fp32 computation it is compared with). With n <= 4,096
(``MAX_HIDDEN``) the screened dot product is within (2^-7 + 2^-10) sum|h_i||w_i| <= that
times ||h|| ||w|| (Cauchy-Schwarz) of the fp32 one. The screen adds to entry v's bias
``2^-6 (H ||w_v|| + |b_v|) + 1e-6`` (H: the batch's largest ||h||), rounded to bf16 (error
<= 2^-8 of itself): what remains is at least (2^-7 + 2^-10) H ||w_v||, so a token whose fp32
logit plus bias is positive screens non-negative. Rounding the screened output to bf16
cannot make a positive number negative, and the 1e-6 covers denormals flushed to zero. The
margin is about twice what this needs (tests/test_projection.py builds the worst case, every
rounding error pointing down, and a margin of 2^-8 fails it).

The screened block is read as int16: a bf16 value is non-negative exactly when its sign bit
is clear, i.e. when its bits read as a non-negative int16 (NaNs, whatever their sign, are
candidates too: ``LOWEST_CANDIDATE_KEY``), and an int16 max is ~2.5x cheaper than a bf16
one here (measured). The norms are taken in float64 (an fp32 norm of tiny states underflows
to 0), and a batch with a state bf16 cannot hold (beyond 3.39e38, or not finite) has every
entry computed in fp32.
"""

from __future__ import annotations

from functools import partial

import torch

from inference_enrich.inference.linear import onednn_linear_available
from inference_enrich.inference.projection import (
    CHUNK,
    Bounds,
    ExactProjection,
    ScratchBuffers,
    check_bounds,
    document_bounds,
    reduce_tiles,
    tile_states,
)

SCREEN_MARGIN = 2.0**-6
"""Relative margin added to each bias in the screen (see the module docstring)."""

ABSOLUTE_SLACK = 1e-6
"""Absolute margin for denormals the bf16 kernel flushes to zero."""

BF16_LARGEST = torch.finfo(torch.bfloat16).max
"""A batch with a state this large (or not finite) is computed in fp32 throughout: bf16
would round it to inf, and inf x 0 is NaN."""

LOWEST_CANDIDATE_KEY = -127
"""Screened values whose bits, read as int16, are at least this are candidates: the
non-negative ones (0 .. 0x7FFF: +0 up to +inf and positive NaNs) and the NaNs with the sign
bit set (0xFF81 .. 0xFFFF = -127 .. -1). Every other negative key is a negative number
(-0.0 .. -inf = -32768 .. -128)."""

MAX_HIDDEN = 4096
"""Largest hidden size the margin's accumulation term is worked out for."""


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16, which AMX CPUs also have) and
    torch has oneDNN's linear: elsewhere bf16 is emulated and screening would not pay."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return onednn_linear_available() and check is not None and bool(check())


class ScreenedProjection:
    """A bf16 screen, then fp32 for each document's candidate entries only."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        if weight.shape[1] > MAX_HIDDEN:
            raise ValueError(f"the screening margin is worked out for hidden sizes up to {MAX_HIDDEN}")
        weight, bias = weight.detach(), bias.detach()  # inference only, whatever it was given
        self._weight = weight.contiguous()
        self._bias = bias
        self._vocab_size = weight.shape[0]
        # float64: in fp32 a norm of tiny values underflows to 0 and of huge ones overflows
        # (review findings), and either voids the margin.
        self._weight_norms = torch.linalg.vector_norm(weight, dim=1, dtype=torch.float64)
        self._raised_bias_base = bias.double() + SCREEN_MARGIN * bias.double().abs() + ABSOLUTE_SLACK
        self._chunks = [
            (torch.ops.mkldnn._reorder_linear_weight(weight[start : start + CHUNK].to(torch.bfloat16), None),
             start, min(CHUNK, weight.shape[0] - start))
            for start in range(0, weight.shape[0], CHUNK)
        ]
        self._buffers = ScratchBuffers()

    @torch.inference_mode()
    def positive_max_logits(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        """[documents, vocabulary] ``relu(max logits)``, in a reused buffer: valid until the
        next call from the same thread. Inference mode: the buffer must never record autograd
        history (it grew a graph per call when called with parameters: breaker finding)."""
        return self._exact(states, bounds, self.candidates(states, bounds))

    @torch.inference_mode()
    def candidates(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        """[documents, vocabulary] bool: False only where ``relu(max logit)`` is certainly 0."""
        check_bounds(bounds)
        if not float(states.abs().max()) < BF16_LARGEST:  # also NaN: no error bound holds
            return torch.ones((len(bounds), self._vocab_size), dtype=torch.bool)
        return self._screen(states, bounds) >= LOWEST_CANDIDATE_KEY

    def _screen(self, states: torch.Tensor, bounds: Bounds) -> torch.Tensor:
        """[documents, vocabulary] int16 keys, non-negative where the entry may be positive."""
        padded, tiles, tile_rows = tile_states(states, bounds, self._buffers, torch.bfloat16)
        largest_norm = torch.linalg.vector_norm(states, dim=1, dtype=torch.float64).max()
        raised_bias = (self._raised_bias_base + SCREEN_MARGIN * largest_norm * self._weight_norms).to(torch.bfloat16)
        keys = self._buffers.get("keys", len(bounds), self._vocab_size, torch.int16)
        chunks = [(partial(_screen_block, packed=packed, bias=raised_bias[start : start + width]), width)
                  for packed, start, width in self._chunks]
        reduce_tiles(padded, tiles, tile_rows, chunks, keys)
        return keys

    def _exact(self, states: torch.Tensor, bounds: Bounds, candidates: torch.Tensor) -> torch.Tensor:
        """fp32 ``relu(max logit)`` at each document's candidates, 0 elsewhere."""
        out = self._buffers.get("out", len(bounds), self._vocab_size, states.dtype)
        out.zero_()
        for document, (first, last) in enumerate(bounds):
            columns = candidates[document].nonzero().squeeze(1)
            if columns.numel():
                maxima = torch.mm(states[first:last], self._weight[columns].T).amax(dim=0)
                out[document, columns] = (maxima + self._bias[columns]).relu_()
        return out


def _screen_block(tile: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One [tile rows, chunk] bf16 block of ``tile @ W.T + raised bias``, its bits as int16."""
    return torch.ops.mkldnn._linear_pointwise(tile, packed, bias, "none", [], "").view(torch.int16)


def default_projection(weight: torch.Tensor, bias: torch.Tensor) -> ScreenedProjection | ExactProjection:
    """The exact projection for ``quantization: none``: screened where bf16 is native, the
    weights are finite and a probe agrees with plain fp32; else ``ExactProjection``. Either
    gives the same weights; the check guards against a torch whose private op changed."""
    if not native_bf16() or not bool(torch.isfinite(weight).all() & torch.isfinite(bias).all()):
        return ExactProjection(weight, bias)
    try:  # ValueError: a hidden size beyond MAX_HIDDEN; AttributeError: a torch without the op
        screened = ScreenedProjection(weight, bias)
        agrees = _agrees_on_probe(screened, weight, bias)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        agrees = False
    return screened if agrees else ExactProjection(weight, bias)


def _agrees_on_probe(screened: ScreenedProjection, weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """The screened result on a few documents built from the model's own weight rows (so
    some logits are large and positive) against ``relu(max(states @ W.T) + b)`` by ``mm``."""
    generator = torch.Generator().manual_seed(0)
    rows = weight[torch.randint(weight.shape[0], (24,), generator=generator)]
    states = rows / rows.norm(dim=1, keepdim=True).clamp(min=1e-12) * float(weight.norm(dim=1).mean())
    states = states + 0.5 * torch.randn(states.shape, generator=generator) * float(states.abs().mean())
    bounds = document_bounds([1, 3, 8, 12])
    got = screened.positive_max_logits(states, bounds)
    expected = torch.stack([(torch.mm(states[first:last], weight.T).amax(dim=0) + bias).relu_()
                            for first, last in bounds])
    return bool(torch.allclose(got, expected, rtol=1e-5, atol=1e-5))
