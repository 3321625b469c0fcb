"""``Linear``: one dense layer (``x @ W.T + b``, optionally then GELU or ReLU) as one call.

Measured on this project's 2-vCPU machines (bench/RESULTS.md, speed round 3), torch's
default fp32 ``addmm`` (MKL) is not the fastest kernel it ships for BERT's shapes: oneDNN's
linear with a weight reordered once at load time ran the same matmuls 6-16% faster, and it
applies the bias and the activation while each output tile is still in registers, where
``addmm`` first copies the bias into the output and GELU then reads and writes it once more
(8% of a MiniLM forward pass on its own). The arithmetic is the same fp32 multiply-adds and
the same erf GELU; only the summation order of the kernel differs (rounding, tested against
``transformers`` in tests/test_native_bert.py).

oneDNN's linear is a private torch op (``torch.ops.mkldnn._linear_pointwise``, the one
``torch.compile`` emits on CPU). Each layer checks it once against ``addmm`` on its own
weight and falls back to ``addmm`` when the op is missing, fails or disagrees, so a torch
build without it (or a future one that changes it) costs speed, never results.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor] | None] = {
    None: None, "gelu": F.gelu, "relu": F.relu,
}
"""Activation name -> the plain-torch function (erf GELU, as ``transformers``' "gelu")."""

_ONEDNN_POST_OPS = {None: ("none", ""), "gelu": ("gelu", "none"), "relu": ("relu", "")}
"""Activation name -> oneDNN post-op (attribute, algorithm); "none" picks the erf GELU."""

SELF_CHECK_TOLERANCE = 1e-4
"""Relative agreement with ``addmm`` a oneDNN layer must show on its self-check input."""


def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's linear op."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class Linear:
    """``activation(x @ weight.T + bias)`` for a [rows, in] ``x``; ``weight`` is [out, in]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None,
                 prefer_onednn: bool = True) -> None:
        self.out_features = weight.shape[0]
        self._weight_t = weight.T.contiguous()
        self._bias = None if bias is None else bias.contiguous()
        self._activation = ACTIVATIONS[activation]
        self._attribute, self._algorithm = _ONEDNN_POST_OPS[activation]
        self._packed: torch.Tensor | None = None
        if prefer_onednn and onednn_linear_available():
            self._packed = self._checked_onednn_weight(weight)
        if self._packed is not None:
            self._weight_t = torch.empty(0)  # only the reordered copy is used: keep one in memory

    @property
    def uses_onednn(self) -> bool:
        return self._packed is not None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """No ``inference_mode`` of its own (the callers run in one, and the vocabulary
        projection calls this thousands of times per batch); the weights need no gradients."""
        if self._packed is not None:
            return self._onednn(x, self._packed)
        return self._reference(x)

    def _onednn(self, x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, packed, self._bias, self._attribute, [], self._algorithm)

    def _reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same layer on torch's default kernels."""
        out = torch.mm(x, self._weight_t) if self._bias is None else torch.addmm(self._bias, x, self._weight_t)
        return out if self._activation is None else self._activation(out)

    def _checked_onednn_weight(self, weight: torch.Tensor) -> torch.Tensor | None:
        """The oneDNN-reordered weight, if oneDNN's result on a small input agrees with
        ``addmm``'s; else None (the layer then runs on ``addmm``)."""
        probe = torch.randn((8, weight.shape[1]), generator=torch.Generator().manual_seed(0))
        expected = self._reference(probe)
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
            got = self._onednn(probe, packed)
        except (RuntimeError, NotImplementedError, AttributeError):  # AttributeError: a torch without the op
            return None
        scale = float(expected.abs().max()) or 1.0
        if got.shape != expected.shape or float((got - expected).abs().max()) > SELF_CHECK_TOLERANCE * scale:
            return None
        return packed
