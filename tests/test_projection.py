"""The exact vocabulary projection and the dense layer it runs on.

Invariant: whatever the document lengths (shorter, longer and across the fixed row tiles),
``ExactProjection.max_logits`` equals the textbook ``max over each document's rows of
(states @ W.T + b)``, and ``Linear`` equals ``addmm`` (+ activation) whichever kernel it uses.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_enrich.inference import projection
from inference_enrich.inference.linear import Linear
from inference_enrich.inference.projection import ExactProjection, document_bounds, tile_pieces

VOCAB, HIDDEN = 2500, 16  # two chunks, the second one partial
GENERATOR = torch.Generator().manual_seed(0)
WEIGHT = torch.randn((VOCAB, HIDDEN), generator=GENERATOR)
BIAS = torch.randn(VOCAB, generator=GENERATOR)
PROJECTION = ExactProjection(WEIGHT, BIAS)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3 * projection.TILE_ROWS), min_size=1, max_size=6))
def test_max_logits_equal_the_textbook_max_for_any_lengths(lengths):
    states = torch.randn((sum(lengths), HIDDEN))
    got = PROJECTION.max_logits(states, document_bounds(lengths))
    expected = torch.stack([(block @ WEIGHT.T + BIAS).amax(dim=0) for block in states.split(lengths)])
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-5)


@given(st.lists(st.integers(1, 700), min_size=1, max_size=8), st.sampled_from([1, 7, 256]))
def test_tile_pieces_cover_every_row_once_and_start_each_document_once(lengths, tile_rows):
    seen = []
    for tile, pieces in enumerate(tile_pieces(document_bounds(lengths), tile_rows)):
        for piece in pieces:
            assert 0 <= piece.start < piece.end <= tile_rows
            seen.extend((piece.document, tile * tile_rows + row, piece.first and row == piece.start)
                        for row in range(piece.start, piece.end))
    rows = [row for _, row, _ in seen]
    assert rows == list(range(sum(lengths)))
    firsts = [document for document, _, first in seen if first]
    assert firsts == list(range(len(lengths)))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.sampled_from([None, "gelu", "relu"]), st.booleans())
def test_linear_equals_addmm_and_its_activation_on_either_kernel(rows, activation, prefer_onednn):
    weight, bias = torch.randn((48, 32)), torch.randn(48)
    x = torch.randn((rows, 32))
    expected = torch.addmm(bias, x, weight.T)
    expected = {None: expected, "gelu": torch.nn.functional.gelu(expected), "relu": expected.relu()}[activation]
    assert torch.allclose(Linear(weight, bias, activation, prefer_onednn)(x), expected, atol=1e-5, rtol=1e-5)


def test_linear_falls_back_to_addmm_when_onednn_disagrees(monkeypatch):
    # A fault we cannot cause with a real torch build (its oneDNN agrees): a mock stands in
    # for a broken or changed private op, and the layer must not use it.
    monkeypatch.setattr(Linear, "_onednn", lambda self, x, packed: torch.zeros((x.shape[0], self.out_features)))
    weight, bias = torch.randn((8, 4)), torch.ones(8)
    layer = Linear(weight, bias)
    assert not layer.uses_onednn
    x = torch.randn((3, 4))
    assert torch.allclose(layer(x), torch.addmm(bias, x, weight.T))


def test_a_document_without_tokens_is_an_error_not_a_stale_row():
    # Review finding: a 0-token document got no tile piece, so its row kept the previous
    # batch's maxima from the reused buffer. It must fail (that document alone, via the
    # batching's per-document fallback), as the per-document amax used to.
    PROJECTION.max_logits(torch.randn((5, HIDDEN)), document_bounds([5]))
    with pytest.raises(ValueError, match="at least one token"):
        PROJECTION.max_logits(torch.randn((5, HIDDEN)), document_bounds([5, 0]))
