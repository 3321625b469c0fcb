"""The local runtimes compute what the reference implementations compute.

Sparse: our batched, chunked, real-tokens-only path against the textbook SPLADE computation
(conftest.textbook_sparse) within 1e-4 per weight. Dense: against sentence-transformers'
own ``encode`` within 1e-5.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from inference_enrich.inference import infer_texts
from inference_enrich.inference.models import resolve_model_path
from inference_enrich.inference.sparse import SparseEncoder

from conftest import SEED_TEXT

SAMPLE_TEXTS = [
    json.loads(line)["text"]
    for line in (resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl")
    .read_text()
    .splitlines()
]
LONG_TEXT = " ".join(SAMPLE_TEXTS) * 2  # well over 512 tokens
MIXED = [SEED_TEXT, "whale", "A", LONG_TEXT, *SAMPLE_TEXTS[:20], "naïve café — 東京 🙂", "x " * 300]


def assert_sparse_close(actual: dict[str, float], expected: dict[str, float], tolerance: float) -> None:
    # A weight within rounding of zero may be present on one side only.
    for token in set(actual) | set(expected):
        assert abs(actual.get(token, 0.0) - expected.get(token, 0.0)) <= tolerance, token


def test_sparse_equals_textbook_computation_in_mixed_length_batches(sparse_runtime, textbook_sparse):
    # Small batches force many batch shapes and paddings; results must not depend on them.
    results = infer_texts(sparse_runtime, MIXED, max_batch_tokens=600, max_batch_size=5)
    for text, result in zip(MIXED, results):
        assert_sparse_close(result.embedding, textbook_sparse(text), 1e-4)


def test_sparse_result_shape(sparse_runtime):
    special = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}
    for result in infer_texts(sparse_runtime, MIXED):
        weights = list(result.embedding.values())
        assert weights and all(w > 0 for w in weights)
        assert weights == sorted(weights, reverse=True)
        assert not special & set(result.embedding)


def test_seed_example_top_tokens(sparse_runtime):
    (result,) = infer_texts(sparse_runtime, [SEED_TEXT])
    top = list(result.embedding)[:10]
    assert {"port", "sky", "television"} <= set(top)
    assert result.is_truncated is False


def test_long_input_is_truncated_at_the_model_limit_and_flagged(sparse_runtime, textbook_sparse):
    (tokenized,) = sparse_runtime.tokenize([LONG_TEXT])
    assert len(tokenized.ids) == 512 and tokenized.is_truncated
    (result,) = infer_texts(sparse_runtime, [LONG_TEXT])
    assert result.is_truncated
    assert_sparse_close(result.embedding, textbook_sparse(LONG_TEXT, max_length=512), 1e-4)
    short = sparse_runtime.tokenize(["x " * 509])[0]  # 509 pieces + [CLS] + [SEP] = 511
    assert len(short.ids) == 511 and not short.is_truncated


def test_configured_max_sequence_length(textbook_sparse):
    runtime = SparseEncoder(resolve_model_path("splade-tiny"), "splade-tiny", max_sequence_length=16)
    (result,) = infer_texts(runtime, [SEED_TEXT])
    assert result.is_truncated
    assert_sparse_close(result.embedding, textbook_sparse(SEED_TEXT, max_length=16), 1e-4)


def test_max_sequence_length_beyond_the_model_is_refused():
    from inference_enrich.inference import ModelLoadError

    with pytest.raises(ModelLoadError, match="exceeds the limit of model 'splade-tiny' \\(512 tokens\\)"):
        SparseEncoder(resolve_model_path("splade-tiny"), "splade-tiny", max_sequence_length=1024)


def test_pruning_task_settings(sparse_runtime):
    (full,) = infer_texts(sparse_runtime, [SEED_TEXT])
    path = resolve_model_path("splade-tiny")
    (top5,) = infer_texts(SparseEncoder(path, "splade-tiny", task_settings={"top_k": 5}), [SEED_TEXT])
    assert list(top5.embedding.items()) == list(full.embedding.items())[:5]
    (heavy,) = infer_texts(SparseEncoder(path, "splade-tiny", task_settings={"min_weight": 1.0}), [SEED_TEXT])
    assert heavy.embedding == {t: w for t, w in full.embedding.items() if w > 1.0}


def test_dense_equals_sentence_transformers(dense_runtime):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(resolve_model_path("all-minilm-l6-v2"), device="cpu")
    texts = [SEED_TEXT, "whale", *SAMPLE_TEXTS[:10], LONG_TEXT]
    expected = reference.encode(texts, batch_size=4, convert_to_numpy=True)
    results = infer_texts(dense_runtime, texts, max_batch_tokens=700, max_batch_size=3)
    actual = np.array([r.embedding for r in results])
    assert actual.shape == (len(texts), 384)
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)
    assert np.allclose(np.linalg.norm(actual, axis=1), 1.0, atol=1e-5)
    # sentence-transformers uses this model with 256 tokens; so do we.
    assert dense_runtime.max_sequence_length == reference.max_seq_length == 256
    assert [r.is_truncated for r in results] == [False] * (len(texts) - 1) + [True]


def test_int8_fast_mode_stays_close_to_exact(endpoints, sparse_runtime):
    from inference_enrich.inference import load_runtime

    fast = load_runtime(endpoints.get("my-elser-model-int8"))
    texts = [*MIXED, "a", "whale song"]  # includes documents shorter than int8's 17-row minimum
    exact_results = infer_texts(sparse_runtime, texts)
    fast_results = infer_texts(fast, texts, max_batch_tokens=600, max_batch_size=5)
    overlaps = []
    for exact, approx in zip(exact_results, fast_results):
        assert_sparse_close(approx.embedding, exact.embedding, 0.25)
        weights = list(approx.embedding.values())
        assert all(w > 0 for w in weights) and weights == sorted(weights, reverse=True)
        top = lambda result: set(list(result.embedding)[:10])
        overlaps.append(len(top(exact) & top(approx)) / 10)
        assert approx.is_truncated == exact.is_truncated
    assert sum(overlaps) / len(overlaps) >= 0.9


def test_models_loaded_concurrently_compute_what_they_compute_alone(endpoints, textbook_sparse):
    # The race _LOADING in inference/loading.py prevents; timing-dependent by nature: on the
    # old code this failed in 1 of 1 runs (SPLADE's head untied). Every round loads both
    # models at the same moment.
    import threading

    from inference_enrich.inference import load_runtime

    for _ in range(4):
        start = threading.Barrier(2)
        runtimes: dict[str, object] = {}

        def load(inference_id: str) -> None:
            start.wait()
            runtimes[inference_id] = load_runtime(endpoints.get(inference_id))

        threads = [threading.Thread(target=load, args=(i,)) for i in ("my-elser-model", "my-minilm")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        (result,) = infer_texts(runtimes["my-elser-model"], [SEED_TEXT])
        assert_sparse_close(result.embedding, textbook_sparse(SEED_TEXT), 1e-4)


def test_a_model_loaded_with_its_head_untied_is_refused(endpoints, textbook_sparse):
    # The damage a foreign concurrent from_pretrained can do, caused for real: transformers'
    # own no_tie_weights() is what another thread's load has active while it runs. It can
    # only hit the transformers path (models our BERT forward pass does not implement); the
    # packaged models, loaded by our own code, read the tied weight directly.
    from transformers.initialization import no_tie_weights

    from inference_enrich.inference import load_runtime
    from inference_enrich.inference.errors import ModelLoadError
    from inference_enrich.inference.transformers_model import TransformersEncoder

    with no_tie_weights():
        with pytest.raises(ModelLoadError, match="output head not tied"):
            TransformersEncoder(resolve_model_path("splade-tiny"), masked_lm=True)
        TransformersEncoder(resolve_model_path("all-minilm-l6-v2"), masked_lm=False)  # no head to tie
        native = load_runtime(endpoints.get("my-elser-model"))
    (result,) = infer_texts(native, [SEED_TEXT])
    assert_sparse_close(result.embedding, textbook_sparse(SEED_TEXT), 1e-4)
