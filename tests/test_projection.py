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


def aligned_rounding_case(scale_h: float, scale_w: float, fp32_logit: float, hidden: int = 1024):
    """One token and eight identical vocabulary rows whose bf16 rounding errors all push the
    screened dot product down (|h_i|, |w_i| constant, so sum |h_i w_i| = ||h|| ||w||: the
    worst case of the margin's proof), with a bias leaving the fp32 logit at ``fp32_logit``."""
    half, nudge = hidden // 2, 2.0**-20
    h, w = torch.empty(hidden), torch.empty(hidden)
    h[:half], w[:half] = scale_h * (1 + 2**-8 - nudge), scale_w * (1 + 2**-8 - nudge)  # rounded down
    h[half:], w[half:] = scale_h * (1 + 2**-8 + nudge), -scale_w * (1 + 2**-8 + nudge)  # rounded up
    weight = w.repeat(8, 1)
    bias = torch.full((8,), -float(h.double() @ w.double()) + fp32_logit)
    return h[None], weight, bias


@pytest.mark.parametrize("scale_h, scale_w, fp32_logit", [
    (2.0**-3, 2.0**-3, 1e-3 * 2.0**-3),  # ordinary magnitudes, the logit far inside the bf16 error
    (2.0**-76, 2.0**58, 2e-5),           # ||h|| underflows in fp32 (review finding)
])
def test_the_screen_keeps_a_positive_entry_in_the_worst_case_of_bf16_rounding(scale_h, scale_w, fp32_logit):
    states, weight, bias = aligned_rounding_case(scale_h, scale_w, fp32_logit)
    expected = ExactProjection(weight, bias).positive_max_logits(states, [(0, 1)])
    assert bool((expected > 0).all())
    screened = ScreenedProjection(weight, bias)
    assert bool(screened.candidates(states, [(0, 1)]).all())
    # Two fp32 kernels summing in different orders differ by up to ~n 2^-24 sum|h_i w_i|.
    rounding = 2 * weight.shape[1] * 2.0**-24 * float(states.abs() @ weight[0].abs())
    assert torch.allclose(screened.positive_max_logits(states, [(0, 1)]), expected, rtol=0, atol=rounding)


def test_the_screen_keeps_positive_entries_when_bf16_or_the_norm_overflows():
    # Review findings: a state beyond bf16's largest value (3.39e38) became inf, inf x 0 a
    # negative NaN, read as a negative key; a norm that overflows fp32 made a raised bias NaN.
    weight, bias = torch.zeros((2058, 16)), torch.zeros(2058)
    weight[:, 1] = 1.0
    states = torch.zeros((1, 16))
    states[0, 0], states[0, 1] = 3.4e38, 1.0
    got = ScreenedProjection(weight, bias).positive_max_logits(states, [(0, 1)])
    assert torch.equal(got, ExactProjection(weight, bias).positive_max_logits(states, [(0, 1)]))
    weight = torch.randn((2058, 16), generator=torch.Generator().manual_seed(1))
    weight[5], bias[5] = 0.0, 1.0
    states = torch.full((1, 16), 1e20)
    assert float(ScreenedProjection(weight, bias).positive_max_logits(states, [(0, 1)])[0, 5]) == 1.0


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


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_states_come_out_as_fp32_gives_them(bad):
    states = torch.randn((12, HIDDEN))
    states[7, 3] = bad
    bounds = document_bounds([5, 7])
    got = PROJECTIONS["screened"].positive_max_logits(states, bounds)
    expected = PROJECTIONS["exact"].positive_max_logits(states, bounds).clone()
    assert torch.equal(got.isnan(), expected.isnan()) and torch.equal(got.isinf(), expected.isinf())
    assert torch.allclose(got[0], expected[0], atol=1e-5)
    assert torch.allclose(got[1].nan_to_num(), expected[1].nan_to_num(), atol=1e-5)


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


@pytest.mark.parametrize("fault", [RuntimeError("no bf16 kernel for this shape"),
                                   AttributeError("'_OpNamespace' 'mkldnn' object has no attribute '_linear_pointwise'")])
def test_the_default_falls_back_to_fp32_when_the_bf16_op_fails_or_is_missing(monkeypatch, fault):
    # Mocks again (faults of a torch build we cannot cause): the op raising, or missing
    # (review finding: an AttributeError failed the model load instead of falling back).
    monkeypatch.setattr(screened_projection, "native_bf16", lambda: True)

    def failing(tile, packed, bias):
        raise fault

    monkeypatch.setattr(screened_projection, "_screen_block", failing)
    assert isinstance(default_projection(WEIGHT, BIAS), ExactProjection)


def test_native_bf16_is_false_on_a_torch_without_the_cpu_check(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert not screened_projection.native_bf16()


def test_hidden_sizes_beyond_the_margins_analysis_run_in_fp32(monkeypatch):
    monkeypatch.setattr(screened_projection, "MAX_HIDDEN", HIDDEN - 1)
    with pytest.raises(ValueError, match="hidden sizes up to"):
        ScreenedProjection(WEIGHT, BIAS)
    monkeypatch.setattr(screened_projection, "native_bf16", lambda: True)
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


@pytest.mark.parametrize("strategy", [ExactProjection, ScreenedProjection])
def test_a_projection_built_from_trainable_parameters_keeps_no_autograd_history(strategy):
    # Breaker finding: outside inference mode, with an nn.Linear's parameters, the screened
    # projection's reused output buffer grew an autograd graph on every call (RSS 0.3 ->
    # 4.2 GB over 600 calls) and the exact one raised. Both are inference-only.
    layer = torch.nn.Linear(HIDDEN, VOCAB)
    projection = strategy(layer.weight, layer.bias)
    states = torch.randn((10, HIDDEN), requires_grad=True)
    for _ in range(3):
        got = projection.positive_max_logits(states, document_bounds([4, 6]))
        assert got.grad_fn is None and not got.requires_grad
    expected = textbook(states.detach(), [4, 6], layer.weight.detach(), layer.bias.detach())
    assert torch.allclose(got, expected, atol=1e-5)


def test_zero_states_against_a_weight_row_of_huge_values_keep_its_bias():
    # Breaker finding: H = 0 times an fp32 norm that overflowed to inf made the raised bias NaN.
    weight, bias = torch.randn((16, 16)), torch.zeros(16)
    weight[2], bias[2] = 1e20, 0.3
    got = ScreenedProjection(weight, bias).positive_max_logits(torch.zeros((3, 16)), [(0, 3)])
    assert float(got[0, 2]) == pytest.approx(0.3)
