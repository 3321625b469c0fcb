"""Our own BERT forward pass (inference/bert/) computes what ``transformers`` computes.

On both packaged models and varied texts (Hypothesis: any Unicode, lengths from one token to
past the model's limit, several lengths per batch so padding and packing are exercised):
the same token ids as ``AutoTokenizer``, the same special tokens and vocabulary, hidden
states within 1e-5 of ``transformers``' ``BertModel`` / ``BertForMaskedLM`` run on the padded
batch, and the masked-LM head transform within 1e-4. Models we do not implement go to
``transformers`` (decided from config.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_enrich.inference.bert.forward import PackedBatch
from inference_enrich.inference.bert.model import NativeBert
from inference_enrich.inference.bert.support import BASE, MASKED_LM, native_config
from inference_enrich.inference.encoder_model import load_encoder_model
from inference_enrich.inference.models import resolve_model_path
from inference_enrich.inference.runtime import Truncator
from inference_enrich.inference.transformers_model import TransformersEncoder

from conftest import SEED_TEXT

MODELS = [("splade-tiny", True), ("all-minilm-l6-v2", False)]

words = st.sampled_from(SEED_TEXT.split() + ["naïve", "café", "東京", "🙂", "Straße", "ﬁ", "e\u0301", "\t", "42,5%"])
texts = st.one_of(
    st.text(min_size=0, max_size=60),  # any code points, control characters and all
    st.lists(words, min_size=1, max_size=700).map(" ".join),  # up to past 512 tokens
)


@pytest.fixture(scope="module", params=MODELS, ids=[name for name, _ in MODELS])
def pair(request) -> tuple[NativeBert, TransformersEncoder, bool]:
    name, masked_lm = request.param
    path = resolve_model_path(name)
    native = load_encoder_model(path, masked_lm)
    assert isinstance(native, NativeBert)  # the packaged models never need transformers
    return native, TransformersEncoder(path, masked_lm), masked_lm


def test_tokenizer_metadata_matches(pair):
    native, reference, masked_lm = pair
    assert native.model_limit == reference.model_limit
    assert native.sep_token_id == reference.sep_token_id
    assert native.special_ids == reference.special_ids
    if masked_lm:  # the output vocabulary: what sparse results are keyed by
        assert native.vocabulary() == reference.vocabulary()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(texts, min_size=1, max_size=6))
def test_forward_matches_transformers(pair, batch):
    native, reference, masked_lm = pair
    limit = native.model_limit
    assert native.encoder(limit + 1)(batch) == reference.encoder(limit + 1)(batch)
    tokenized = Truncator(native.encoder(limit + 1), native.sep_token_id, limit)(batch)
    ours, theirs = native.hidden_states(tokenized), reference.hidden_states(tokenized)
    assert ours.shape == (sum(len(item.ids) for item in tokenized), theirs.shape[1])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    if masked_lm:
        (ours_head, *_), (theirs_head, *_) = native.masked_lm_head(), reference.masked_lm_head()
        with torch.inference_mode():
            # Head outputs reach ~|5| and the head amplifies the states' rounding; the sparse
            # weights themselves are checked to 1e-4 against the textbook in test_runtimes.py.
            torch.testing.assert_close(ours_head(ours), theirs_head(theirs), atol=1e-4, rtol=0)


@given(lengths=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=12))
def test_padded_block_rows_are_each_written_once(lengths):
    """Attention's block is allocated uninitialised: every row must be either a token's
    (``rows``) or zeroed padding (``padding_rows``), else garbage (NaN) reaches the values."""
    batch = PackedBatch(lengths)
    if not batch.padded:
        assert len(set(lengths)) == 1
        return
    written = torch.cat([batch.rows, batch.padding_rows]).sort().values
    assert torch.equal(written, torch.arange(batch.documents * batch.longest))


def test_uninitialised_memory_never_reaches_the_hidden_states(pair):
    """torch's deterministic mode fills every new uninitialised tensor with NaN: a row of
    attention's block left unwritten would turn the states NaN. Garbage in reused memory
    cannot be caused on demand; this makes every uninitialised byte the worst garbage."""
    import torch.utils.deterministic as deterministic

    native, reference, _ = pair
    tokenized = Truncator(native.encoder(native.model_limit + 1), native.sep_token_id, native.model_limit)(
        ["", "a", "the quick brown fox " * 20, "jumps over the lazy dog " * 3])
    before = torch.are_deterministic_algorithms_enabled(), deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    deterministic.fill_uninitialized_memory = True
    try:
        assert torch.empty(4).isnan().all()
        ours = native.hidden_states(tokenized)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=True)
        deterministic.fill_uninitialized_memory = before[1]
    assert not ours.isnan().any()
    assert (ours - reference.hidden_states(tokenized)).abs().max().item() < 1e-5


def test_masked_lm_head_weights_are_transformers_tied_head():
    path = resolve_model_path("splade-tiny")
    native, reference = load_encoder_model(path, True), TransformersEncoder(path, True)
    (_, ours_weight, ours_bias), (_, their_weight, their_bias) = native.masked_lm_head(), reference.masked_lm_head()
    assert torch.equal(ours_weight, their_weight) and torch.equal(ours_bias, their_bias)


def _copy_with_config(tmp_path: Path, name: str, **changes) -> Path:
    source = Path(resolve_model_path(name))
    target = tmp_path / name
    target.mkdir()
    for file in source.iterdir():
        if file.is_file():
            (target / file.name).symlink_to(file)
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").unlink()
    (target / "config.json").write_text(json.dumps({**config, **changes}))
    return target


@pytest.mark.parametrize("changes", [
    {"model_type": "roberta"},
    {"position_embedding_type": "relative_key"},
    {"hidden_act": "gelu_new"},
    {"is_decoder": True},
    {"architectures": ["BertForSequenceClassification"]},
    {"quantization_config": {"quant_method": "bitsandbytes", "load_in_8bit": True}},
    {"tie_word_embeddings": False},  # transformers 5 then uses decoder.bias, not predictions.bias
], ids=lambda changes: next(iter(changes)))
def test_architectures_we_do_not_implement_go_to_transformers(tmp_path, changes):
    assert native_config(resolve_model_path("splade-tiny"), MASKED_LM) is not None
    assert native_config(_copy_with_config(tmp_path, "splade-tiny", **changes), MASKED_LM) is None


def test_a_model_without_tokenizer_json_is_loaded_by_transformers_and_agrees(tmp_path):
    # MiniLM also ships vocab.txt, which transformers' BertTokenizer builds a tokenizer from.
    path = _copy_with_config(tmp_path, "all-minilm-l6-v2")
    (path / "tokenizer.json").unlink()
    assert native_config(path, BASE) is None
    fallback = load_encoder_model(str(path), False)
    assert isinstance(fallback, TransformersEncoder)
    native = load_encoder_model(resolve_model_path("all-minilm-l6-v2"), False)
    batch = [SEED_TEXT, "whale", "naïve café — 東京 🙂 " * 20]
    tokenized = Truncator(native.encoder(257), native.sep_token_id, 256)(batch)
    assert Truncator(fallback.encoder(257), fallback.sep_token_id, 256)(batch) == tokenized
    torch.testing.assert_close(native.hidden_states(tokenized), fallback.hidden_states(tokenized), atol=1e-5, rtol=0)


def test_each_truncation_length_has_its_own_tokenizer():
    # Truncation is set on the Rust tokenizer: asking for one length never changes another's.
    native = load_encoder_model(resolve_model_path("all-minilm-l6-v2"), False)
    short, long = native.encoder(8), native.encoder(300)
    text = " ".join(["word"] * 50)
    assert len(short([text])[0]) == 8 and len(long([text])[0]) == 52
    assert len(short([text])[0]) == 8


def _replace_json(path: Path, name: str, change) -> None:
    """Replace the symlinked ``name`` in ``path`` by a changed copy (``change`` edits the dict)."""
    data = json.loads((path / name).read_text()) if (path / name).exists() else {}
    if (path / name).exists():
        (path / name).unlink()
    change(data)
    (path / name).write_text(json.dumps(data))


@pytest.mark.parametrize("name, change", [
    ("tokenizer_config.json", lambda c: [c.pop(key) for key in ("cls_token", "sep_token")]),  # BertTokenizer's defaults
    ("tokenizer.json", lambda t: t.update(post_processor=None)),  # no [CLS]/[SEP] from the pipeline
    ("tokenizer_config.json", lambda c: c.update(do_lower_case=False)),  # transformers follows the config
    ("tokenizer_config.json", lambda c: c.update(tokenizer_class="XLMRobertaTokenizer")),
    ("special_tokens_map.json", lambda m: m.update(mask_token="[unused1]")),
], ids=["no-special-tokens", "no-post-processor", "cased-config", "other-class", "other-special-map"])
def test_a_tokenizer_transformers_would_build_differently_goes_to_transformers(tmp_path, name, change):
    """Where ``tokenizer.json`` and ``tokenizer_config.json`` disagree (or the config leaves
    out what transformers fills in), transformers' tokenizer is the reference: our path must
    not run it with other token ids (found by review: each gave different ids silently)."""
    assert native_config(resolve_model_path("all-minilm-l6-v2"), BASE) is not None
    path = _copy_with_config(tmp_path, "all-minilm-l6-v2")
    _replace_json(path, name, change)
    assert native_config(path, BASE) is None


def test_an_unreadable_weights_file_is_a_model_load_error(tmp_path):
    """A git clone without LFS leaves a pointer where model.safetensors should be: one clear
    error, not safetensors' own exception as a traceback."""
    from inference_enrich.inference.errors import ModelLoadError

    path = _copy_with_config(tmp_path, "all-minilm-l6-v2")
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 90\n")
    config = native_config(path, BASE)
    assert config is not None
    with pytest.raises(ModelLoadError, match="cannot load model from"):
        NativeBert(str(path), config, masked_lm=False)

