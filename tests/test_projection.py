"""The vocabulary projections and the dense layer they run on.

Invariants: whatever the document lengths (shorter, longer and across the fixed row tiles),
``positive_max_logits`` of the exact and the screened projection equals the textbook
``relu(max over each document's rows of (states @ W.T + b))``; the screened one stays exact
for entries whose max sits right at zero, where its bf16 screen is least sure; and
``Linear`` equals ``addmm`` (+ activation) whichever kernel it uses.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_enrich.inference import projection, screened_projection
from inference_enrich.inference.linear import Linear
from inference_enrich.inference.projection import ExactProjection, document_bounds, tile_pieces
from inference_enrich.inference.screened_projection import ScreenedProjection, default_projection

VOCAB, HIDDEN = 2500, 16  # two chunks, the second one partial
GENERATOR = torch.Generator().manual_seed(0)
WEIGHT = torch.randn((VOCAB, HIDDEN), generator=GENERATOR)
BIAS = torch.randn(VOCAB, generator=GENERATOR)
PROJECTIONS = {"exact": ExactProjection(WEIGHT, BIAS), "screened": ScreenedProjection(WEIGHT, BIAS)}


def textbook(states: torch.Tensor, lengths: list[int], weight: torch.Tensor = WEIGHT,
             bias: torch.Tensor = BIAS) -> torch.Tensor:
    return torch.stack([(block @ weight.T + bias).amax(dim=0) for block in states.split(lengths)]).relu()


@pytest.mark.parametrize("name", PROJECTIONS)
@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 3 * projection.TILE_ROWS), min_size=1, max_size=6),
       scale=st.sampled_from([1e-3, 1.0, 50.0]))
def test_positive_max_logits_equal_the_textbook_for_any_lengths(name, lengths, scale):
    states = torch.randn((sum(lengths), HIDDEN)) * scale
    got = PROJECTIONS[name].positive_max_logits(states, document_bounds(lengths))
    assert torch.allclose(got, textbook(states, lengths), atol=1e-4 * scale, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=4),
       spread=st.sampled_from([1e-7, 1e-5, 1e-3, 1e-2]), seed=st.integers(0, 2**16))
def test_the_screen_keeps_every_entry_whose_max_is_barely_positive(lengths, spread, seed):
    # The adversarial case for the bf16 screen: a bias that puts each entry's max (over the
    # first document) within +-spread (relative) of zero, inside bf16's rounding error of
    # the logits (~0.4%). Every entry positive in fp32 must survive the screen, exact.
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn((sum(lengths), HIDDEN), generator=generator)
    first_max = (states[: lengths[0]] @ WEIGHT.T).amax(dim=0)
    offsets = (torch.rand(VOCAB, generator=generator) * 2 - 1) * spread
    bias = -first_max + offsets * first_max.abs()
    screened = ScreenedProjection(WEIGHT, bias)
    expected = textbook(states, lengths, bias=bias)
    assert torch.allclose(screened.positive_max_logits(states, document_bounds(lengths)), expected,
                          atol=1e-5, rtol=1e-5)
    assert bool(screened.candidates(states, document_bounds(lengths))[expected > 0].all())


def test_the_screen_leaves_few_candidates_on_real_documents():
    # The point of screening: on the packaged SPLADE model and real text, almost every
    # entry is ruled out before fp32 (bench/RESULTS.md: ~450 of 30,522 per document).
    from inference_enrich.inference import load_endpoints, load_runtime

    runtime = load_runtime(load_endpoints().get("my-elser-model", "sparse_embedding"))
    encoder = runtime._runtime
    texts = ["The sky above the port was the color of television tuned to a dead channel.",
             "Sparse retrieval models expand a query into weighted vocabulary terms."]
    batch = runtime.tokenize(texts)
    with torch.inference_mode():
        states = encoder._head_transform(encoder._model.hidden_states(batch))
    _, weight, bias = encoder._model.masked_lm_head()
    bounds = document_bounds([len(item.ids) for item in batch])
    candidates = ScreenedProjection(weight, bias).candidates(states, bounds)
    positive = ExactProjection(weight, bias).positive_max_logits(states, bounds) > 0
    assert bool(candidates[positive].all())
    assert int(candidates.sum()) < 0.05 * candidates.numel()


def test_non_finite_states_come_out_as_fp32_gives_them():
    states = torch.randn((12, HIDDEN))
    states[7, 3] = float("nan")
    bounds = document_bounds([5, 7])
    got = PROJECTIONS["screened"].positive_max_logits(states, bounds)
    expected = PROJECTIONS["exact"].positive_max_logits(states, bounds).clone()
    assert torch.equal(got.isnan(), expected.isnan()) and bool(got[1].isnan().all())
    assert torch.allclose(got[0], expected[0], atol=1e-5)


def test_the_default_is_screened_exactly_where_bf16_is_native():
    assert isinstance(default_projection(WEIGHT, BIAS), ScreenedProjection) == screened_projection.native_bf16()


def test_the_default_falls_back_to_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(screened_projection, "native_bf16", lambda: False)
    assert isinstance(default_projection(WEIGHT, BIAS), ExactProjection)


def test_the_default_falls_back_to_fp32_when_the_bf16_op_misbehaves(monkeypatch):
    # A fault we cannot cause with a real torch build: a mock stands in for a private op
    # that changed (here: ignores the raised bias, so the screen would drop positives).
    monkeypatch.setattr(screened_projection, "native_bf16", lambda: True)
    monkeypatch.setattr(screened_projection, "_screen_block",
                        lambda tile, packed, bias: torch.ops.mkldnn._linear_pointwise(
                            tile, packed, None, "none", [], "").view(torch.int16))
    assert isinstance(default_projection(WEIGHT, BIAS), ExactProjection)


def test_the_default_falls_back_to_fp32_for_non_finite_weights(monkeypatch):
    monkeypatch.setattr(screened_projection, "native_bf16", lambda: True)
    weight = WEIGHT.clone()
    weight[3, 0] = float("inf")
    assert isinstance(default_projection(weight, BIAS), ExactProjection)


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


@pytest.mark.parametrize("name", PROJECTIONS)
def test_a_document_without_tokens_is_an_error_not_a_stale_row(name):
    # Review finding: a 0-token document got no tile piece, so its row kept the previous
    # batch's maxima from the reused buffer. It must fail (that document alone, via the
    # batching's per-document fallback), as the per-document amax used to.
    PROJECTIONS[name].positive_max_logits(torch.randn((5, HIDDEN)), document_bounds([5]))
    with pytest.raises(ValueError, match="at least one token"):
        PROJECTIONS[name].positive_max_logits(torch.randn((5, HIDDEN)), document_bounds([5, 0]))
