"""The rerank task type (#24): a local cross-encoder service, Elasticsearch's request and
response shapes through the public API and `enrich infer`, and `enrich search --rerank-id`.

No cross-encoder ships in an installed package, so the tests build a tiny one: a
BertForSequenceClassification with one label and random (seeded) weights, and the
packaged SPLADE model's tokenizer. Its scores mean nothing; what is checked is the shape,
the batching (scores equal the model's own forward pass one pair at a time) and the order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from inference_enrich.inference import load_endpoints, perform_inference
from inference_enrich.inference.endpoint_files import default_endpoints_path, parse_endpoints
from inference_enrich.inference.errors import EndpointConfigError, ModelLoadError
from inference_enrich.inference.models import resolve_model_path
from inference_enrich.inference.rerank import CrossEncoder

from pipeline_helpers import run
from test_index_sinks import job_for, settings_for

CLI = [sys.executable, "-m", "inference_enrich.pipelines.cli"]
QUERY = "where do whales live"
DOCUMENTS = ["Whales live in every ocean, from the poles to the tropics.", "A rabbit with pink eyes.",
             "Call me Ishmael. " * 40, "", "Liberty and government are old themes of political writing.",
             "The sea, the sea."]


def build_cross_encoder(directory, num_labels: int = 1):
    torch.manual_seed(7)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels)
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    return build_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def endpoints_file(tmp_path_factory, cross_encoder_dir):
    path = tmp_path_factory.mktemp("endpoints") / "endpoints.yaml"
    packaged = yaml.safe_load(default_endpoints_path().read_text(encoding="utf-8"))
    packaged["endpoints"]["my-reranker"] = {"task_type": "rerank", "service": "transformers",
                                            "service_settings": {"model_id": str(cross_encoder_dir)},
                                            "task_settings": {"top_n": 3}}
    path.write_text(yaml.safe_dump(packaged))
    return path


def forward_one_pair(directory, query: str, document: str) -> float:
    """The model's own score for one pair, unbatched: sigmoid of its logit."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = BertForSequenceClassification.from_pretrained(directory).eval()
    encoded = tokenizer(query, document, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return float(torch.sigmoid(model(**encoded).logits[0, 0]))


def test_scores_equal_the_models_forward_pass_pair_by_pair(cross_encoder_dir):
    encoder = CrossEncoder(cross_encoder_dir, "tiny", batch_size=2)  # batches of 2, padded
    scores = encoder.score(QUERY, DOCUMENTS)
    assert scores == pytest.approx([forward_one_pair(cross_encoder_dir, QUERY, d) for d in DOCUMENTS], abs=1e-5)
    assert len(set(round(s, 6) for s in scores)) > 1  # the test can tell documents apart


def test_rerank_orders_cuts_and_returns_documents(cross_encoder_dir):
    encoder = CrossEncoder(cross_encoder_dir, "tiny")
    scores = encoder.score(QUERY, DOCUMENTS)
    every = encoder.rerank(QUERY, DOCUMENTS)
    assert sorted(r.index for r in every) == list(range(len(DOCUMENTS)))
    assert [r.relevance_score for r in every] == sorted(scores, reverse=True)
    assert all(r.text == DOCUMENTS[r.index] and r.relevance_score == scores[r.index] for r in every)
    best_two = encoder.rerank(QUERY, DOCUMENTS, top_n=2, return_documents=False)
    assert [r.to_dict() for r in best_two] == [{"index": r.index, "relevance_score": r.relevance_score}
                                               for r in every[:2]]


def test_public_api_and_cli_answer_elasticsearchs_shape(endpoints_file):
    endpoint = load_endpoints(endpoints_file).get("my-reranker")
    answer = perform_inference(endpoint, "rerank", DOCUMENTS, query=QUERY)
    assert list(answer) == ["rerank"] and len(answer["rerank"]) == 3  # the endpoint's top_n
    assert all(set(item) == {"index", "relevance_score", "text"} for item in answer["rerank"])
    assert perform_inference(endpoint, "rerank", DOCUMENTS, QUERY, top_n=5, return_documents=False)["rerank"][:3] == [
        {k: v for k, v in item.items() if k != "text"} for item in answer["rerank"]]
    done = subprocess.run([*CLI, "infer", "rerank", "my-reranker", *DOCUMENTS, "--query", QUERY, "--endpoints",
                           str(endpoints_file), "--top-n", "2", "--no-return-documents"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rerank"] == [{k: v for k, v in item.items() if k != "text"}
                                                  for item in answer["rerank"][:2]]
    done = subprocess.run([*CLI, "infer", "rerank", "my-reranker", "a", "--endpoints", str(endpoints_file)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == ["enrich: error: Field [query] cannot be null"]
    done = subprocess.run([*CLI, "infer", "text_embedding", "my-reranker", "a", "--endpoints", str(endpoints_file)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Incompatible task_type" in done.stderr


def test_a_rerank_endpoint_is_refused_where_embeddings_are_needed(tmp_path, endpoints_file, cross_encoder_dir):
    done = subprocess.run([*CLI, "run", "--inference-id", "my-reranker", "--endpoints", str(endpoints_file),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == ("enrich: error: endpoint 'my-reranker' is a rerank endpoint; "
                                                    "the job embeds documents with a sparse_embedding or "
                                                    "text_embedding endpoint")
    with pytest.raises(EndpointConfigError, match="not supported by the rerank task type"):
        parse_endpoints({"endpoints": {"r": {
            "task_type": "rerank", "service": "transformers", "service_settings": {"model_id": str(cross_encoder_dir)},
            "chunking_settings": {"strategy": "word", "max_chunk_size": 50, "overlap": 10}}}}, "test")
    with pytest.raises(ModelLoadError, match="has 2 output labels"):
        CrossEncoder(build_cross_encoder(tmp_path / "two-labels", num_labels=2), "two")


def test_search_rerank_id_reorders_the_window(tmp_path, endpoints_file, cross_encoder_dir):
    settings = settings_for("embedded", None, tmp_path)
    run(job_for(settings, str(tmp_path / "out")))
    args = [*CLI, "search", "whale at sea", "--index-path", settings.path, "--endpoints", str(endpoints_file),
            "--json", "--top-k", "4"]
    plain = subprocess.run([*args, "--rank-window-size", "10"], capture_output=True, text=True)
    reranked = subprocess.run([*args, "--rank-window-size", "10", "--rerank-id", "my-reranker"],
                              capture_output=True, text=True)
    window = subprocess.run([*args[:-2], "--top-k", "10"], capture_output=True, text=True)
    assert plain.returncode == reranked.returncode == window.returncode == 0, reranked.stderr
    window_hits = json.loads(window.stdout)["hits"]
    hits = json.loads(reranked.stdout)["hits"]
    encoder = CrossEncoder(cross_encoder_dir, "tiny")
    scores = encoder.score("whale at sea", [hit["source"]["text"] for hit in window_hits])
    expected = sorted(range(10), key=lambda i: -scores[i])[:4]
    assert [hit["id"] for hit in hits] == [window_hits[i]["id"] for i in expected]
    assert [hit["score"] for hit in hits] == pytest.approx([scores[i] for i in expected], abs=1e-6)
    done = subprocess.run([*args, "--rerank-id", "my-elser-model"], capture_output=True, text=True)
    assert done.returncode == 2 and "Incompatible task_type" in done.stderr


def test_serve_answers_rerank_in_elasticsearchs_shape(tmp_path, endpoints_file, cross_encoder_dir):
    from serve_helpers import enrich_server, http

    encoder = CrossEncoder(cross_encoder_dir, "tiny")
    expected = [r.to_dict() for r in encoder.rerank(QUERY, DOCUMENTS, 2, False)]
    with enrich_server(tmp_path, endpoints=endpoints_file) as server:
        answer = http("POST", f"{server.url}/_inference/rerank/my-reranker",
                      {"query": QUERY, "input": DOCUMENTS, "top_n": 2, "return_documents": False})
        assert answer.status == 200 and answer.body == {"rerank": expected}
        answer = http("POST", f"{server.url}/_inference/my-reranker", {"query": QUERY, "input": DOCUMENTS})
        assert answer.status == 200 and len(answer.body["rerank"]) == 3  # the endpoint's top_n
        assert all(item["text"] == DOCUMENTS[item["index"]] for item in answer.body["rerank"])
        answer = http("POST", f"{server.url}/_inference/rerank/my-reranker", {"input": DOCUMENTS})
        assert answer.status == 400 and answer.body["error"]["reason"] == "Validation Failed: 1: Field [query] cannot be null;"
        answer = http("POST", f"{server.url}/_inference/rerank/my-elser-model", {"query": QUERY, "input": ["a"]})
        assert answer.status == 400 and "Incompatible task_type" in answer.body["error"]["reason"]
        embedding = http("POST", f"{server.url}/_inference/sparse_embedding/my-elser-model", {"input": "whale"})
        assert embedding.status == 200 and "sparse_embedding" in embedding.body


@pytest.fixture(scope="module")
def rerank_server(tmp_path_factory, endpoints_file, cross_encoder_dir):
    """``enrich serve`` with my-reranker from its endpoints file (a copy: PUT and _update
    rewrite it) and a model root holding a link to the tiny cross-encoder as ``ce``."""
    from serve_helpers import enrich_server

    work = tmp_path_factory.mktemp("rerank-serve")
    roots = work / "roots"
    roots.mkdir()
    (roots / "ce").symlink_to(cross_encoder_dir)
    endpoints = work / "endpoints.yaml"
    shutil.copyfile(endpoints_file, endpoints)
    with enrich_server(work, "--model-root", str(roots), endpoints=endpoints) as server:
        yield server, roots


def test_serve_creates_and_updates_rerank_endpoints(rerank_server, cross_encoder_dir):
    """PUT and _update of a rerank endpoint load its cross-encoder as a file's rerank endpoint
    is loaded (they used to ask the embedding loader, which refused: 400 'load it with
    load_reranker'), and what they made answers Elasticsearch's rerank requests."""
    from elasticsearch import Elasticsearch

    from serve_helpers import http

    server, roots = rerank_server
    every = [r.to_dict() for r in CrossEncoder(cross_encoder_dir, "tiny").rerank(QUERY, DOCUMENTS)]
    created = http("PUT", f"{server.url}/_inference/rerank/srr",
                   {"service": "transformers", "service_settings": {"model_id": str(roots / "ce")}})
    assert created.status == 200, created.body
    assert created.body["inference_id"] == "srr" and created.body["task_type"] == "rerank"
    updated = http("PUT", f"{server.url}/_inference/my-reranker/_update", {"task_settings": {"top_n": 1}})
    assert updated.status == 200, updated.body
    assert updated.body["task_settings"]["top_n"] == 1
    with Elasticsearch(server.url, request_timeout=300, max_retries=0) as es:
        assert es.inference.rerank(inference_id="srr", query=QUERY, input=DOCUMENTS).body == {"rerank": every}
        assert es.inference.rerank(inference_id="my-reranker", query=QUERY, input=DOCUMENTS).body == {
            "rerank": every[:1]}  # the updated top_n
        es.inference.update(inference_id="srr", inference_config={"task_settings": {"return_documents": False}})
        answer = es.inference.inference(task_type="rerank", inference_id="srr", query=QUERY, input=DOCUMENTS,
                                        task_settings={"top_n": 2})
        assert answer.body == {"rerank": [{k: v for k, v in item.items() if k != "text"} for item in every[:2]]}
        assert es.inference.get(inference_id="srr").body["endpoints"][0]["task_settings"] == {
            "return_documents": False}


def test_a_lone_surrogate_in_the_rerank_query_is_a_400_naming_it(rerank_server):
    """As one in ``input`` is (it was a 500: 'TextInputSequence must be str')."""
    from serve_helpers import http

    server, _ = rerank_server
    answer = http("POST", f"{server.url}/_inference/rerank/my-reranker", raw=b'{"query": "q\\ud800", "input": ["a"]}')
    assert answer.status == 400, answer.body
    assert answer.body["error"]["reason"] == (
        "Validation Failed: 1: Field [query] is not valid Unicode: a lone surrogate [\\ud800] at position [1];")
    answer = http("POST", f"{server.url}/_inference/my-reranker", raw=b'{"query": "q", "input": ["a\\udfff"]}')
    assert answer.status == 400 and "Field [input] entry [0] is not valid Unicode" in answer.body["error"]["reason"]


def test_serve_preloads_a_rerank_endpoint_with_the_embedding_models(tmp_path, endpoints_file):
    """--preload loads every endpoint's model in parallel threads; the cross-encoder's load
    takes its turn with the others' (it did not, and a SPLADE model loading meanwhile came out
    with its tied head unset: start-up failed with 'output head not tied')."""
    from serve_helpers import enrich_server, http

    endpoints = tmp_path / "endpoints.yaml"
    shutil.copyfile(endpoints_file, endpoints)
    with enrich_server(tmp_path, "--preload", endpoints=endpoints) as server:
        answer = http("POST", f"{server.url}/_inference/rerank/my-reranker", {"query": QUERY, "input": DOCUMENTS})
        assert answer.status == 200 and len(answer.body["rerank"]) == 3
        assert http("POST", f"{server.url}/_inference/my-elser-model", {"input": QUERY}).status == 200
