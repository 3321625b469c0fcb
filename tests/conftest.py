"""Shared fixtures: the packaged models (loaded once per test session) and the textbook
computations our runtimes must reproduce."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from inference_enrich.inference import load_endpoints, load_runtime
from inference_enrich.inference.models import resolve_model_path

# The endpoint store every command reads (inference/endpoint_store.py) lives in a directory
# of this session's own, for this process and every server or CLI a test starts: no test
# reads or writes the user's real ~/.config/inference-enrich.
os.environ["ENRICH_HOME"] = tempfile.mkdtemp(prefix="enrich-home-")

SEED_TEXT = "The sky above the port was the color of television tuned to a dead channel."


@pytest.fixture(scope="session")
def endpoints():
    return load_endpoints()


@pytest.fixture(scope="session")
def sparse_runtime(endpoints):
    return load_runtime(endpoints.get("my-elser-model"))


@pytest.fixture(scope="session")
def dense_runtime(endpoints):
    return load_runtime(endpoints.get("my-minilm"))


@pytest.fixture(scope="session")
def textbook_sparse():
    """SPLADE the textbook way: one document at a time through plain transformers, the full
    [tokens, vocabulary] logits, log1p(relu(.)) first and the max over positions second."""
    path = resolve_model_path("splade-tiny")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    special = sorted(set(tokenizer.all_special_ids))

    def compute(text: str, max_length: int = 512) -> dict[str, float]:
        encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            logits = model(**encoded).logits[0]
        weights = torch.log1p(torch.relu(logits)).amax(dim=0)
        weights[special] = 0
        ids = torch.nonzero(weights > 0).squeeze(1).tolist()
        return {tokenizer.convert_ids_to_tokens(i): float(weights[i]) for i in ids}

    return compute


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory):
    from services import elasticsearch_server

    with elasticsearch_server(tmp_path_factory.mktemp("noida-db")) as url:
        yield url


@pytest.fixture(scope="session")
def opensearch_url():
    from services import opensearch_server

    with opensearch_server() as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    from services import kafka_broker

    with kafka_broker(tmp_path_factory.mktemp("noida-kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def prose_corpus():
    """2,000 documents of real prose (10 to 400 words) from the benchmark's corpus builder."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "corpus.py"
    spec = importlib.util.spec_from_file_location("bench_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_corpus(2000)
