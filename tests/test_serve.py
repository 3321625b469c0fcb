"""``enrich serve``: a real server process driven by the official elasticsearch-py (8.x here,
9.x from its own venv) and openai clients, and by plain HTTP where the wire itself is
the point (status, headers, Elasticsearch's error envelope)."""

from __future__ import annotations

import http.client as http_client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import openai
import pytest
from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

from conftest import SEED_TEXT
from inference_enrich.inference import Endpoint, infer_texts, load_endpoints
from inference_enrich.server.inference_api import prune_sparse
from inference_enrich.server.request_parsing import parse_time_value
from inference_enrich.server.store import EndpointStore, endpoint_to_body
from serve_helpers import enrich_server, http

REPO = Path(__file__).resolve().parents[1]
MAX_BODY = 256 * 1024
MAX_INPUTS = 64
TOLERANCE = 1e-5
CORPUS = [json.loads(line)["text"] for line in
          resources.files("inference_enrich.sample_data").joinpath("sample_corpus.jsonl")
          .read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # --preload loads every packaged model at start, each in its own worker thread at the
    # same moment (see _LOADING in inference/loading.py): the equality-with-the-library
    # tests below also guard those loads.
    work = tmp_path_factory.mktemp("serve")
    with enrich_server(work, "--max-body-bytes", str(MAX_BODY), "--max-inputs", str(MAX_INPUTS),
                       "--no-access-log", "--preload") as running:
        yield running


def client(url: str, **options) -> Elasticsearch:
    return Elasticsearch(url, request_timeout=300, connections_per_node=32, **options)


@pytest.fixture(scope="module")
def es(server):
    with client(server.url) as es_client:
        yield es_client


def max_sparse_difference(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a.get(token, 0.0) - b.get(token, 0.0)) for token in {*a, *b})


def max_dense_difference(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


def batch_counts(url: str, model_id: str) -> tuple[float, float]:
    """(forward passes, documents) the server has run for ``model_id`` so far."""
    text = http("GET", f"{url}/metrics").body
    values = {}
    for kind in ("count", "sum"):
        match = re.search(rf'^enrich_batch_documents_{kind}\{{model_id="{model_id}"\}} (\S+)$', text, re.M)
        values[kind] = float(match.group(1)) if match else 0.0
    return values["count"], values["sum"]


# ------------------------------------------------------------------ the seed request


def test_seed_example_answers_as_elasticsearch_and_equals_the_library(es, sparse_runtime):
    answer = es.inference.sparse_embedding(inference_id="my-elser-model", input=SEED_TEXT)
    assert answer.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    (entry,) = answer.body["sparse_embedding"]
    assert set(entry) == {"is_truncated", "embedding"} and entry["is_truncated"] is False
    top10 = list(entry["embedding"])[:10]
    assert {"port", "sky", "television"} <= set(top10)
    weights = list(entry["embedding"].values())
    assert weights == sorted(weights, reverse=True) and min(weights) > 0
    (library,) = infer_texts(sparse_runtime, [SEED_TEXT])
    assert max_sparse_difference(entry["embedding"], library.embedding) <= TOLERANCE


def test_every_preloaded_sparse_model_equals_the_library(es, endpoints):
    # The module's server preloads all three packaged models at once (see _LOADING in
    # inference/loading.py); the int8 one has its own worker and must be right too.
    from inference_enrich.inference import load_runtime

    answer = es.inference.sparse_embedding(inference_id="my-elser-model-int8", input=SEED_TEXT)
    (library,) = infer_texts(load_runtime(endpoints.get("my-elser-model-int8")), [SEED_TEXT])
    assert max_sparse_difference(answer.body["sparse_embedding"][0]["embedding"], library.embedding) <= TOLERANCE


def test_inference_without_task_type_keeps_input_order(es, dense_runtime):
    texts = CORPUS[:3]
    answer = es.inference.inference(inference_id="my-minilm", input=texts)
    entries = answer.body["text_embedding"]
    assert [set(entry) for entry in entries] == [{"embedding"}] * 3
    for entry, expected in zip(entries, infer_texts(dense_runtime, texts)):
        assert len(entry["embedding"]) == 384
        assert max_dense_difference(entry["embedding"], expected.embedding) <= TOLERANCE


def test_text_embedding_method_and_compatibility_headers(server, es):
    one = es.inference.text_embedding(inference_id="my-minilm", input="whales at sea")
    assert len(one.body["text_embedding"][0]["embedding"]) == 384
    for version in ("8", "9"):
        media = f"application/vnd.elasticsearch+json; compatible-with={version}"
        answer = http("POST", f"{server.url}/_inference/my-minilm", {"input": "whales at sea"},
                      {"Accept": media, "Content-Type": media})
        assert answer.status == 200
        assert answer.headers["content-type"] == f"application/vnd.elasticsearch+json;compatible-with={version}"
        assert answer.body == one.body


def test_root_health_and_metrics(server, es):
    assert es.info().body["version"]["number"].startswith("8.")
    assert es.ping()
    listed = http("GET", f"{server.url}/_inference").body["endpoints"]
    assert [e["inference_id"] for e in listed][:3] == ["my-elser-model", "my-elser-model-int8", "my-minilm"]
    assert http("GET", f"{server.url}/_inference/_all").body["endpoints"] == listed
    health = http("GET", f"{server.url}/_health")
    assert health.status == 200 and health.body["status"] == "green" and health.body["endpoints"] == 3
    metrics = http("GET", f"{server.url}/metrics")
    assert metrics.status == 200 and metrics.headers["x-elastic-product"] == "Elasticsearch"
    for name in ("enrich_http_requests_total", "enrich_http_request_duration_seconds_bucket",
                 "enrich_batch_documents_bucket", "enrich_inference_tokens_total"):
        assert name in metrics.body
    assert re.search(r'enrich_http_requests_total\{method="POST",route="/_inference/\{task_type\}/\{inference_id\}",status="200"\}',
                     metrics.body)


# ------------------------------------------------------------------ errors, on the wire

INFER = "/_inference/sparse_embedding/my-elser-model"
ERRORS = [
    ("GET", "/_inference/nope", None, {}, 404, "resource_not_found_exception", "Inference endpoint not found [nope]"),
    ("POST", "/_inference/sparse_embedding/nope", {"input": "x"}, {}, 404, "resource_not_found_exception", "Inference endpoint not found [nope]"),
    ("DELETE", "/_inference/nope", None, {}, 404, "resource_not_found_exception", "Inference endpoint not found [nope]"),
    ("POST", "/_inference/text_embedding/my-elser-model", {"input": "x"}, {}, 400, "status_exception",
     "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]"),
    ("GET", "/_inference/text_embedding/my-elser-model", None, {}, 400, "status_exception", "Incompatible task_type"),
    ("POST", "/_inference/sparse/my-elser-model", {"input": "x"}, {}, 400, "status_exception", "Unknown task_type [sparse]"),
    ("GET", "/_inference/sparse/_all", None, {}, 400, "status_exception", "Unknown task_type [sparse]"),
    ("POST", INFER, {}, {}, 400, "action_request_validation_exception", "Validation Failed: 1: Field [input] cannot be null;"),
    ("POST", INFER, {"input": None}, {}, 400, "action_request_validation_exception", "Field [input] cannot be null"),
    ("POST", INFER, {"input": []}, {}, 400, "action_request_validation_exception", "Field [input] cannot be an empty array"),
    ("POST", INFER, {"input": [1, 2]}, {}, 400, "x_content_parse_exception", "failed to parse field [input]"),
    ("POST", INFER, {"input": ["fine", "bad \ud800 text"]}, {}, 400, "action_request_validation_exception",
     "Field [input] entry [1] is not valid Unicode: a lone surrogate [\\ud800] at position [4]"),
    ("POST", INFER, {"input": {"text": "x"}}, {}, 400, "x_content_parse_exception", "failed to parse field [input]"),
    ("POST", INFER, {"input": "x", "colour": "red"}, {}, 400, "x_content_parse_exception", "unknown field [colour]"),
    ("POST", INFER, {"input": ["x"] * (MAX_INPUTS + 1)}, {}, 400, "action_request_validation_exception", f"at most {MAX_INPUTS} per request"),
    ("POST", INFER, {"input": "x", "input_type": "search"}, {}, 400, "action_request_validation_exception",
     "Field [input_type] cannot be specified for task type [sparse_embedding]"),
    ("POST", "/_inference/my-minilm", {"input": "x", "input_type": "shouting"}, {}, 400, "action_request_validation_exception", "invalid value [shouting]"),
    ("POST", INFER, {"input": "x", "task_settings": {"top_k": "ten"}}, {}, 400, "validation_exception",
     "endpoint 'my-elser-model': task_settings.top_k: expected a positive integer"),
    ("POST", "/_inference/my-minilm", {"input": "x", "task_settings": {"top_k": 3}}, {}, 400, "validation_exception",
     "task_settings.top_k: unknown key"),
    ("POST", INFER + "?timeout=soon", {"input": "x"}, {}, 400, "parse_exception", "failed to parse setting [timeout]"),
    ("POST", INFER + "?timeout=1nanos", {"input": "x"}, {}, 408, "status_exception", "Request timed out after"),
    ("PUT", "/_inference/sparse_embedding/bad-one", {"service": "transformers", "service_settings": {}}, {}, 400,
     "validation_exception", "request body: endpoint 'bad-one': service_settings.model_id: required"),
    ("PUT", "/_inference/sparse_embedding/bad-one", {"service": "openai", "service_settings": {"model_id": "x"}}, {}, 400,
     "validation_exception", "task_type: service 'openai' cannot do 'sparse_embedding'"),
    ("PUT", "/_inference/sparse_embedding/bad-one", {"service": "transformers", "service_settings": {"model_id": "splade-tiny"},
     "task_settings": {"top_k": 0}}, {}, 400, "validation_exception", "task_settings.top_k: expected a positive integer"),
    ("PUT", "/_inference/sparse_embedding/bad-one", {"service": "transformers", "service_settings": {"model_id": "splade-tiny"},
     "chunking_settings": {"strategy": "word", "max_chunk_size": 301, "overlap": 10}}, {}, 400, "validation_exception",
     "chunking_settings: Validation Failed: 1: [chunking_settings] Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0];"),
    ("PUT", "/_inference/bad-one", {"service": "transformers", "service_settings": {"model_id": "splade-tiny"}}, {}, 400,
     "validation_exception", "request body: endpoint 'bad-one': task_type: required"),
    ("PUT", "/_inference/sparse_embedding/Bad.Id", {"service": "transformers", "service_settings": {"model_id": "splade-tiny"}}, {}, 400,
     "action_request_validation_exception", "Invalid inference_id"),
    ("PUT", "/_inference/sparse_embedding/my-elser-model", {"service": "transformers", "service_settings": {"model_id": "splade-tiny"}}, {}, 400,
     "status_exception", "Inference endpoint [my-elser-model] already exists"),
    ("PUT", "/_inference/my-elser-model/_update", {"service": "other"}, {}, 400, "status_exception", "[service] cannot be updated"),
    ("PUT", "/_inference/sparse_embedding/new-one", None, {}, 400, "parse_exception", "request body is required"),
    ("POST", INFER, None, {}, 400, "parse_exception", "request body is required"),
    ("POST", "/_cat/indices", {"input": "x"}, {}, 400, "illegal_argument_exception", "no handler found for uri [/_cat/indices] and method [POST]"),
    ("POST", "/_inference", {"input": "x"}, {}, 405, "method_not_allowed", "Incorrect HTTP method for uri [/_inference] and method [POST]"),
    ("POST", INFER, {"input": "x"}, {"Accept": "application/vnd.elasticsearch+json; compatible-with=7"}, 400,
     "media_type_header_exception", "compatible-with must be one of [8, 9]"),
    ("POST", INFER, {"input": "x"}, {"Content-Type": "text/plain"}, 406, "media_type_header_exception",
     "Content-Type header [text/plain] is not supported"),
]


@pytest.mark.parametrize("method, path, body, headers, status, error_type, reason", ERRORS,
                         ids=[f"{e[0]} {e[1][:40]} {e[6][:30]}" for e in ERRORS])
def test_every_error_in_elasticsearch_envelope(server, method, path, body, headers, status, error_type, reason):
    answer = http(method, server.url + path, body, headers)
    assert answer.status == status, answer.body
    assert answer.headers["x-elastic-product"] == "Elasticsearch"
    error = answer.body["error"]
    assert answer.body["status"] == status
    assert error["type"] == error_type and error["root_cause"] == [{"type": error_type, "reason": error["reason"]}]
    assert reason in error["reason"]


def test_a_lone_surrogate_is_refused_on_the_openai_route_too(server):
    """The openai client cannot even encode one; a raw request can (JSON's \\udfff escape)."""
    answer = http("POST", server.url + "/v1/embeddings", {"model": "my-minilm", "input": "bad \udfff text"})
    assert answer.status == 400, answer.body
    assert "entry [0] is not valid Unicode: a lone surrogate [\\udfff] at position [4]" in answer.body["error"]["message"]


def test_malformed_json_is_a_parse_error(server):
    answer = http("POST", server.url + INFER, raw=b'{"input": "x"')
    assert answer.status == 400 and answer.body["error"]["type"] == "x_content_parse_exception"
    assert answer.body["error"]["reason"].startswith("[1:14]")


def test_client_raises_elasticsearch_errors(es):
    with pytest.raises(NotFoundError) as missing:
        es.inference.sparse_embedding(inference_id="nope", input="x")
    assert missing.value.body["error"]["reason"] == "Inference endpoint not found [nope]"
    with pytest.raises(BadRequestError) as wrong:
        es.inference.text_embedding(inference_id="my-elser-model", input="x")
    assert "Incompatible task_type" in wrong.value.body["error"]["reason"]


def test_a_directory_outside_every_model_root_is_refused_at_put(server, es, tmp_path):
    with pytest.raises(BadRequestError) as refused:
        es.inference.put(task_type="sparse_embedding", inference_id="empty-dir",
                         inference_config={"service": "transformers",
                                           "service_settings": {"model_id": str(tmp_path)}})
    assert "is not a model this server may load" in refused.value.body["error"]["reason"]
    with pytest.raises(NotFoundError):
        es.inference.get(inference_id="empty-dir")


# ------------------------------------------------------------------ limits


def test_oversized_bodies_are_refused_and_the_server_keeps_answering(server, es):
    with pytest.raises(ApiError) as too_large:
        es.inference.sparse_embedding(inference_id="my-elser-model", input="word " * (MAX_BODY // 5 + 10))
    assert too_large.value.meta.status == 413
    assert too_large.value.body["error"]["type"] == "content_too_long_exception"

    # Chunked, with no Content-Length to refuse up front: cut off while it streams in.
    host, port = server.url.removeprefix("http://").split(":")
    connection = http_client.HTTPConnection(host, int(port), timeout=120)
    chunks = iter([b'{"input": "'] + [b"word " * 1000] * (MAX_BODY // 5000 + 2) + [b'"}'])
    connection.request("POST", INFER, body=chunks, headers={"Content-Type": "application/json"},
                       encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and response.getheader("X-Elastic-Product") == "Elasticsearch"
    assert json.loads(response.read())["error"]["type"] == "content_too_long_exception"
    connection.close()

    answer = es.inference.sparse_embedding(inference_id="my-elser-model", input=SEED_TEXT)
    assert "port" in answer.body["sparse_embedding"][0]["embedding"]


# ------------------------------------------------------------------ dynamic batching


def run_concurrently(calls) -> list:
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # reported below, with the others
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures[:3]
    return results


def test_32_concurrent_sparse_requests_each_get_their_own_answer(server, es):
    texts = CORPUS[:32]
    alone = [es.inference.sparse_embedding(inference_id="my-elser-model", input=t).body["sparse_embedding"][0]
             for t in texts]
    passes_before, documents_before = batch_counts(server.url, "splade-tiny")
    together = run_concurrently([
        lambda t=t: es.inference.sparse_embedding(inference_id="my-elser-model", input=t).body["sparse_embedding"][0]
        for t in texts])
    for single, concurrent in zip(alone, together):
        assert single["is_truncated"] == concurrent["is_truncated"]
        assert max_sparse_difference(single["embedding"], concurrent["embedding"]) <= TOLERANCE
    passes, documents = batch_counts(server.url, "splade-tiny")
    assert documents - documents_before == 32
    assert passes - passes_before < 32  # some requests shared a forward pass


def test_32_concurrent_openai_requests_each_get_their_own_answer(server):
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    texts = CORPUS[:32]
    alone = [api.embeddings.create(model="my-minilm", input=t).data[0].embedding for t in texts]
    together = run_concurrently([
        lambda t=t: api.embeddings.create(model="my-minilm", input=t).data[0].embedding for t in texts])
    for single, concurrent in zip(alone, together):
        assert max_dense_difference(single, concurrent) <= TOLERANCE


# ------------------------------------------------------------------ OpenAI-compatible route


def test_openai_client_embeddings_equal_the_elasticsearch_answer(server, es):
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    texts = ["whales at sea", SEED_TEXT]
    expected = [e["embedding"] for e in es.inference.text_embedding(inference_id="my-minilm", input=texts).body["text_embedding"]]
    for encoding in ("base64", "float"):  # the client asks for base64 unless told otherwise
        options = {} if encoding == "base64" else {"encoding_format": "float"}
        answer = api.embeddings.create(model="my-minilm", input=texts, **options)
        assert answer.model == "my-minilm" and [d.index for d in answer.data] == [0, 1]
        assert answer.usage.prompt_tokens == answer.usage.total_tokens > 10
        for got, want in zip(answer.data, expected):
            assert max_dense_difference(got.embedding, want) <= TOLERANCE
    with pytest.raises(openai.NotFoundError):
        api.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError, match="sparse_embedding endpoint"):
        api.embeddings.create(model="my-elser-model", input="x")
    with pytest.raises(openai.BadRequestError, match="token-id input"):
        api.embeddings.create(model="my-minilm", input=[[101, 2023]])


# ------------------------------------------------------------------ endpoints over REST


def test_put_get_infer_restart_delete(tmp_path, endpoints):
    config = {"service": "transformers", "service_settings": {"model_id": "splade-tiny", "max_sequence_length": 128},
              "task_settings": {"top_k": 5}}
    with enrich_server(tmp_path) as server, client(server.url) as es:
        created = es.inference.put(task_type="sparse_embedding", inference_id="my-pruned", inference_config=config)
        assert created.body == {"inference_id": "my-pruned", "task_type": "sparse_embedding", **config}
        assert es.inference.get(inference_id="my-pruned").body == {"endpoints": [created.body]}
        assert created.body in es.inference.get(task_type="sparse_embedding", inference_id="_all").body["endpoints"]
        assert created.body not in es.inference.get(task_type="text_embedding", inference_id="_all").body["endpoints"]
        full = es.inference.sparse_embedding(inference_id="my-elser-model", input=SEED_TEXT).body
        pruned = es.inference.sparse_embedding(inference_id="my-pruned", input=SEED_TEXT).body
        assert list(pruned["sparse_embedding"][0]["embedding"]) == list(full["sparse_embedding"][0]["embedding"])[:5]
        override = es.inference.inference(inference_id="my-pruned", input=SEED_TEXT, task_settings={"top_k": 2})
        assert len(override.body["sparse_embedding"][0]["embedding"]) == 2
        updated = es.inference.update(inference_id="my-pruned", inference_config={"task_settings": {"top_k": 3}})
        assert updated.body["task_settings"] == {"top_k": 3}
        dense = es.inference.put(inference_id="my-dense", inference_config={
            "task_type": "text_embedding", "service": "transformers", "service_settings": {"model_id": "all-minilm-l6-v2"}})
        assert dense.body["task_type"] == "text_embedding"

    # The file is the pipeline's format: the CLI (as `enrich run --endpoints`) uses the endpoint.
    assert load_endpoints(server.endpoints).get("my-pruned").task_settings == {"top_k": 3}
    done = subprocess.run([sys.executable, "-m", "inference_enrich.pipelines.cli", "infer", "sparse_embedding",
                           "my-pruned", SEED_TEXT, "--endpoints", str(server.endpoints)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["sparse_embedding"][0]["embedding"]) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".endpoints.yaml")] == []  # no temp file left

    with enrich_server(tmp_path) as server, client(server.url) as es:
        assert es.inference.get(inference_id="my-pruned").body["endpoints"][0]["task_settings"] == {"top_k": 3}
        again = es.inference.sparse_embedding(inference_id="my-pruned", input=SEED_TEXT).body
        assert len(again["sparse_embedding"][0]["embedding"]) == 3
        assert es.inference.delete(inference_id="my-pruned").body == {"acknowledged": True}
        assert es.inference.delete(task_type="text_embedding", inference_id="my-dense").body == {"acknowledged": True}
        for call in (lambda: es.inference.get(inference_id="my-pruned"),
                     lambda: es.inference.sparse_embedding(inference_id="my-pruned", input="x")):
            with pytest.raises(NotFoundError) as gone:
                call()
            assert gone.value.meta.status == 404
            assert gone.value.body["error"]["reason"] == "Inference endpoint not found [my-pruned]"
        remaining = [e["inference_id"] for e in es.inference.get().body["endpoints"]]
        assert remaining == sorted(e.inference_id for e in endpoints)
    assert "my-pruned" not in [e.inference_id for e in load_endpoints(server.endpoints)]


def test_chunking_settings_are_accepted_on_put_and_returned_on_get(server, es):
    config = {"service": "transformers", "service_settings": {"model_id": "splade-tiny"},
              "chunking_settings": {"strategy": "word", "max_chunk_size": 50, "overlap": 10}}
    created = es.inference.put(task_type="sparse_embedding", inference_id="my-chunked", inference_config=config)
    assert created.body == {"inference_id": "my-chunked", "task_type": "sparse_embedding", "task_settings": {}, **config}
    assert es.inference.get(inference_id="my-chunked").body == {"endpoints": [created.body]}
    defaulted = es.inference.put(task_type="sparse_embedding", inference_id="my-chunked-default", inference_config={
        **config, "chunking_settings": {}})  # {} is Elasticsearch's default, spelled out on GET
    assert defaulted.body["chunking_settings"] == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
    updated = es.inference.update(inference_id="my-chunked", inference_config={"chunking_settings": {"overlap": 20}})
    assert updated.body["chunking_settings"] == {"strategy": "word", "max_chunk_size": 50, "overlap": 20}
    stored = load_endpoints(server.endpoints).get("my-chunked")
    assert stored.chunking_settings.to_dict() == updated.body["chunking_settings"]  # what `enrich run` reads
    for inference_id in ("my-chunked", "my-chunked-default"):
        es.inference.delete(inference_id=inference_id)


# ------------------------------------------------------------------ auth


def test_api_keys_from_environment_and_file(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# one key per line\nkey-from-file-0123\n")
    with enrich_server(tmp_path, "--api-keys-file", str(keys_file),
                       env={"ENRICH_API_KEYS": "key-from-env-4567"}) as server:
        for headers in ({}, {"Authorization": "ApiKey wrong"}, {"Authorization": "Basic a2V5LWZyb20tZW52"}):
            refused = http("POST", server.url + INFER, {"input": "x"}, headers)
            assert refused.status == 401 and refused.body["error"]["type"] == "security_exception"
            assert refused.headers["www-authenticate"] == "ApiKey"
            assert refused.headers["x-elastic-product"] == "Elasticsearch"
        assert http("GET", f"{server.url}/metrics").status == 401
        assert http("GET", f"{server.url}/_health").status == 200
        for key in ("key-from-env-4567", "key-from-file-0123"):
            with client(server.url, api_key=key) as es:
                assert "port" in es.inference.sparse_embedding(
                    inference_id="my-elser-model", input=SEED_TEXT).body["sparse_embedding"][0]["embedding"]
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="key-from-file-0123", max_retries=0)
        assert len(api.embeddings.create(model="my-minilm", input="x").data[0].embedding) == 384
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).embeddings.create(
                model="my-minilm", input="x")
    log = server.log.read_text()
    assert "API keys required" in log
    assert "key-from-env-4567" not in log and "key-from-file-0123" not in log


def test_api_keys_file_without_keys_is_refused_at_start(tmp_path):
    (tmp_path / "keys.txt").write_text("# nothing yet\n")
    done = subprocess.run([sys.executable, "-m", "inference_enrich.pipelines.cli", "serve",
                           "--api-keys-file", str(tmp_path / "keys.txt")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "holds no key" in done.stderr


# ------------------------------------------------------------------ graceful shutdown


def test_sigterm_answers_the_request_in_flight(tmp_path):
    texts = [" ".join(CORPUS[i % len(CORPUS)] for i in range(k, k + 6)) for k in range(100)]
    with enrich_server(tmp_path, "--no-access-log", "--shutdown-timeout", "600") as server:
        url = server.url
        answer: dict = {}
        request = threading.Thread(target=lambda: answer.update(
            result=http("POST", url + INFER + "?timeout=10m", {"input": texts}, timeout=600)))
        request.start()
        deadline = time.monotonic() + 300
        while True:  # until the server is answering it (the /metrics request itself is 1)
            gauge = re.search(r"^enrich_http_requests_in_progress (\S+)$", http("GET", f"{url}/metrics").body, re.M)
            if float(gauge.group(1)) >= 2:
                break
            assert time.monotonic() < deadline and request.is_alive()
            time.sleep(0.05)
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit is by SIGTERM.
        assert server.stop(timeout=300) == -signal.SIGTERM
        request.join(60)
    result = answer["result"]
    assert result.status == 200
    assert len(result.body["sparse_embedding"]) == 100
    log = server.log.read_text()
    assert "Waiting for connections to close" in log and "Application shutdown complete" in log


# ------------------------------------------------------------------ elasticsearch-py 9.x


ES9_VENV = REPO / ".venv-es9"
ES9_SCRIPT = """
import json, sys
from elasticsearch import Elasticsearch, NotFoundError
es = Elasticsearch(sys.argv[1], request_timeout=300)
seed = es.inference.sparse_embedding(inference_id="my-elser-model", input=sys.argv[2]).body
put = es.inference.put(task_type="text_embedding", inference_id="from-es9", inference_config={
    "service": "transformers", "service_settings": {"model_id": "all-minilm-l6-v2"}}).body
got = es.inference.get(inference_id="from-es9").body
dense = es.inference.inference(inference_id="from-es9", input=["a", "b"]).body
deleted = es.inference.delete(inference_id="from-es9").body
try:
    es.inference.get(inference_id="from-es9")
    missing = None
except NotFoundError as error:
    missing = error.body
import elasticsearch
print(json.dumps({"version": elasticsearch.__versionstr__, "seed": seed, "put": put, "got": got,
                  "dense": dense, "deleted": deleted, "missing": missing}))
"""


def es9_python() -> Path:
    """A venv with elasticsearch-py 9.x (the project pins 8.x), made on first use."""
    python = ES9_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import elasticsearch"]).returncode == 0:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ES9_VENV)],
                       check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "elasticsearch>=9,<10"],
                       check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"cannot create a venv with elasticsearch-py 9.x: {error}")
    return python


def test_elasticsearch_py_9_client(server):
    done = subprocess.run([str(es9_python()), "-c", ES9_SCRIPT, server.url, SEED_TEXT],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["version"].startswith("9.")
    assert "television" in list(out["seed"]["sparse_embedding"][0]["embedding"])[:10]
    assert out["put"]["inference_id"] == "from-es9" and out["got"]["endpoints"] == [out["put"]]
    assert len(out["dense"]["text_embedding"]) == 2
    assert out["deleted"] == {"acknowledged": True}
    assert out["missing"]["error"]["type"] == "resource_not_found_exception"


# ------------------------------------------------------------------ small pieces


def test_prune_sparse_keeps_the_highest_weights_above_min_weight():
    embedding = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}
    assert prune_sparse(embedding, {}) is embedding
    assert prune_sparse(embedding, {"top_k": 2}) == {"a": 3.0, "b": 2.0}
    assert prune_sparse(embedding, {"min_weight": 1.0}) == {"a": 3.0, "b": 2.0}
    assert prune_sparse(embedding, {"min_weight": 0.4, "top_k": 3}) == {"a": 3.0, "b": 2.0, "c": 1.0}


def test_get_never_shows_secret_settings():
    endpoint = Endpoint("remote", "text_embedding", "transformers",
                        {"model_id": "x", "api_key": "s3cret", "client_secret": "s3cret"}, {})
    assert endpoint_to_body(endpoint)["service_settings"] == {"model_id": "x"}


@pytest.mark.parametrize("value, seconds", [(None, 30.0), ("-1", None), ("0", 0.0), ("90s", 90.0),
                                             ("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0)])
def test_time_values(value, seconds):
    assert parse_time_value(value, 30.0) == seconds


def test_store_with_every_own_endpoint_deleted_holds_the_packaged_ones(tmp_path, endpoints):
    path = tmp_path / "endpoints.yaml"
    path.write_text("endpoints: {}\n")
    assert [e.inference_id for e in EndpointStore(path).list()] == sorted(e.inference_id for e in endpoints)


def test_open_mode_says_so_at_start(server):
    assert "API keys off: open local mode" in server.log.read_text()
