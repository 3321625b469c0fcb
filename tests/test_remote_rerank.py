"""Remote rerank (#24): ``elasticsearch_remote`` (ES's ``_inference/rerank`` shapes) and
``rerank_api`` (Cohere/Jina-style ``/v1/rerank``, what infinity and TEI serve).

Neither Elasticsearch's rerank nor infinity/TEI can run here (no cluster; infinity needs its
own venv and a hub-free cross-encoder), so the server is a small HTTP stand-in that speaks
both wire formats and answers with the real tiny cross-encoder of test_rerank; it also
answers 503 once when asked to, to cause the retry."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inference_enrich.inference import perform_inference
from inference_enrich.inference.endpoint_files import parse_endpoints
from inference_enrich.inference.errors import RemoteServiceError
from inference_enrich.inference.rerank import CrossEncoder

from test_rerank import DOCUMENTS, QUERY, build_cross_encoder


class RerankServer(ThreadingHTTPServer):
    def __init__(self, encoder: CrossEncoder) -> None:
        super().__init__(("127.0.0.1", 0), RerankHandler)
        self.encoder, self.fail_next, self.requests = encoder, [], []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class RerankHandler(BaseHTTPRequestHandler):
    server: RerankServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body, self.headers.get("Authorization")))
        if self.server.fail_next:
            return self._answer(self.server.fail_next.pop(0), {"error": {"reason": "busy"}})
        if self.headers.get("Authorization") not in ("Bearer k", "ApiKey k"):
            return self._answer(401, {"error": {"reason": "missing authentication credentials"}})
        if self.path == "/v1/rerank":
            ranked = self.server.encoder.rerank(body["query"], body["documents"], body.get("top_n"),
                                                body["return_documents"])
            results = [{"index": r.index, "relevance_score": r.relevance_score,
                        **({"document": {"text": r.text}} if r.text is not None else {})} for r in ranked]
            return self._answer(200, {"results": results, "model": body.get("model")})
        if self.path == "/_inference/rerank/cluster-reranker":
            ranked = self.server.encoder.rerank(body["query"], body["input"], body.get("top_n"),
                                                body["return_documents"])
            return self._answer(200, {"rerank": [r.to_dict() for r in ranked]})
        self._answer(404, {"error": "no route"})

    def _answer(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return CrossEncoder(build_cross_encoder(tmp_path_factory.mktemp("cross-encoder")), "tiny")


@pytest.fixture
def server(encoder):
    server = RerankServer(encoder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def endpoints(url: str):
    return parse_endpoints({"endpoints": {
        "cohere-style": {"task_type": "rerank", "service": "rerank_api",
                         "service_settings": {"url": f"{url}/v1/rerank", "model_id": "tiny", "api_key": "k",
                                              "initial_backoff_s": 0.01},
                         "task_settings": {"top_n": 4}},
        "cluster": {"task_type": "rerank", "service": "elasticsearch_remote",
                    "service_settings": {"url": url, "inference_id": "cluster-reranker", "api_key": "k"}},
        "no-key": {"task_type": "rerank", "service": "rerank_api",
                   "service_settings": {"url": f"{url}/v1/rerank", "max_retries": 0}},
    }}, "test")


@pytest.mark.parametrize("inference_id", ["cohere-style", "cluster"])
def test_remote_rerank_answers_what_the_model_ranks(inference_id, server, encoder):
    registry = endpoints(server.url)
    local = [r.to_dict() for r in encoder.rerank(QUERY, DOCUMENTS, 2, True)]
    answer = perform_inference(registry.get(inference_id), "rerank", DOCUMENTS, QUERY, top_n=2)
    assert answer == {"rerank": local}
    without_text = perform_inference(registry.get(inference_id), "rerank", DOCUMENTS, QUERY,
                                     return_documents=False)["rerank"]
    assert [item["index"] for item in without_text][:2] == [item["index"] for item in local]
    assert all("text" not in item for item in without_text)
    path, body, _ = server.requests[0]
    if inference_id == "cohere-style":
        assert path == "/v1/rerank" and body["model"] == "tiny" and body["documents"] == DOCUMENTS
        assert len(without_text) == 4  # the endpoint's top_n
    else:
        assert path == "/_inference/rerank/cluster-reranker" and body["input"] == DOCUMENTS
        assert len(without_text) == len(DOCUMENTS)


def test_remote_rerank_retries_503_and_names_a_refusal(server):
    registry = endpoints(server.url)
    server.fail_next = [503, 503]
    answer = perform_inference(registry.get("cohere-style"), "rerank", DOCUMENTS, QUERY)
    assert len(answer["rerank"]) == 4 and len(server.requests) == 3
    with pytest.raises(RemoteServiceError, match="answered 401: missing authentication credentials") as error:
        perform_inference(registry.get("no-key"), "rerank", DOCUMENTS, QUERY)
    assert "\n" not in str(error.value)
