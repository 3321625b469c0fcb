"""Remote inference services (``openai``, ``elasticsearch_remote``) against a real remote:
``enrich serve`` in its own process (API keys required), behind a fault-injecting proxy
(``remote_proxy.py``) that throttles (429 + Retry-After), fails (503) and refuses inputs
holding a marker word (400 in the remote's error shape). The Beam job runs on FnApiRunner.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import apache_beam as beam
import pytest
import yaml
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from inference_enrich import Enrich
from inference_enrich.inference import infer_texts, load_endpoints
from inference_enrich.inference.errors import EndpointConfigError
from inference_enrich.inference.remote.http import (
    MAX_RETRY_AFTER_S,
    ClientSettings,
    HttpAnswer,
    retry_after_s,
    retry_wait_s,
)
from inference_enrich.inference.remote.runtime import RemoteRuntime
from inference_enrich.pipelines.cli import main
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.enrich import JobFailed
from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run, sparse
from remote_proxy import RemoteFaultProxy
from serve_helpers import enrich_server, http
from services import free_port

API_KEY = "remote-test-key-5f0c9a1e"
KEY_ENV = "REMOTE_TEST_API_KEY"
MARKER = "xyzzy"
REQUESTS_PER_MINUTE = 600
TOLERANCE = 1e-5
CORPUS = [json.loads(line)["text"] for line in
          resources.files("inference_enrich.sample_data").joinpath("sample_corpus.jsonl")
          .read_text(encoding="utf-8").splitlines()]
MARKED = {f"doc-{i}" for i in range(0, len(CORPUS), 8)}
CALLING = {  # fast retries, small requests: many requests per test
    "rate_limit": {"requests_per_minute": REQUESTS_PER_MINUTE},
    "max_inputs_per_request": 4,
    "max_concurrent_requests": 4,
    "max_retries": 3,
    "initial_backoff_s": 0.05,
    "max_backoff_s": 0.5,
}


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """``enrich serve`` with an API key required, its packaged endpoints (my-elser-model,
    my-minilm) as the remote's."""
    work = tmp_path_factory.mktemp("remote")
    with enrich_server(work, "--no-access-log", env={"ENRICH_API_KEYS": API_KEY}) as server:
        yield server


@pytest.fixture
def proxy(remote):
    with RemoteFaultProxy(remote.url, marker=MARKER) as running:
        yield running


@pytest.fixture
def key_in_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


def endpoints_file(path: Path, proxy_url: str, **overrides) -> Path:
    """remote-dense (openai, key in the file), remote-sparse and remote-es-dense
    (elasticsearch_remote, key from the environment), each merged with ``overrides``."""
    endpoints = {
        "remote-dense": {"task_type": "text_embedding", "service": "openai", "service_settings": {
            "url": f"{proxy_url}/v1/embeddings", "model_id": "my-minilm", "api_key": API_KEY, **CALLING}},
        "remote-sparse": {"task_type": "sparse_embedding", "service": "elasticsearch_remote",
                          "service_settings": {"url": proxy_url, "inference_id": "my-elser-model",
                                               "api_key_env": KEY_ENV, **CALLING}},
        "remote-es-dense": {"task_type": "text_embedding", "service": "elasticsearch_remote",
                            "service_settings": {"url": proxy_url, "inference_id": "my-minilm",
                                                 "api_key_env": KEY_ENV, **CALLING}},
    }
    for inference_id, settings in overrides.items():
        endpoints[inference_id]["service_settings"].update(settings)
    path.write_text(yaml.safe_dump({"endpoints": endpoints}))
    return path


def write_corpus(path: Path) -> Path:
    """The sample corpus; every 8th document holds the marker word the proxy refuses."""
    lines = [json.dumps({"id": f"doc-{i}", "text": f"{text} {MARKER}" if f"doc-{i}" in MARKED else text})
             for i, text in enumerate(CORPUS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_rate_held(arrivals: list[float], requests_per_minute: int, slack_s: float = 0.25) -> None:
    """No stretch of arrivals at the proxy holds more requests than the limit allows for
    its length (plus ``slack_s`` of arrival jitter and the request that opens it)."""
    rate = requests_per_minute / 60
    for first in range(len(arrivals)):
        for last in range(first + 1, len(arrivals)):
            span = arrivals[last] - arrivals[first]
            assert last - first <= (span + slack_s) * rate + 1, (
                f"{last - first + 1} requests within {span:.3f} s at a limit of {requests_per_minute}/min")


def assert_no_key_in(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


PROBE = ["probe"]


@pytest.mark.parametrize("inference_id, local_runtime", [("remote-dense", "dense_runtime"),
                                                        ("remote-sparse", "sparse_runtime")])
def test_job_through_a_throttling_failing_remote(tmp_path, remote, proxy, key_in_env, request,
                                                 inference_id, local_runtime, capfd, caplog):
    proxy.reset(throttle={3, 7}, unavailable={4, 10})
    source = write_corpus(tmp_path / "corpus.jsonl")
    output = tmp_path / "out"
    summary = run(JobConfig(input=[str(source)], output=str(output), inference_id=inference_id,
                            endpoints=str(endpoints_file(tmp_path / "endpoints.yaml", proxy.url))))

    rows, letters = read_output(str(output)), read_dead_letters(str(output))
    assert set(rows) == {f"doc-{i}" for i in range(len(CORPUS))} - MARKED
    assert sorted(letter["record"]["id"] for letter in letters) == sorted(MARKED)
    for letter in letters:
        assert letter["stage"] == "inference"
        assert letter["error"].startswith("RemoteInputError: ")
        assert f"input contains the refused word [{MARKER}]" in letter["error"]  # the server's words
    assert (summary.records_written, summary.dead_letters) == (len(rows), len(MARKED))

    ids = sorted(rows)
    local = infer_texts(request.getfixturevalue(local_runtime), [CORPUS[int(i[4:])] for i in ids])
    for doc_id, expected in zip(ids, local):
        row = rows[doc_id]
        assert row["is_truncated"] is False
        if inference_id == "remote-dense":
            assert row["embedding"] == pytest.approx(expected.embedding, abs=TOLERANCE)
        else:
            assert sparse(row) == pytest.approx(expected.embedding, abs=TOLERANCE)

    assert proxy.statuses.count(429) == 2 and proxy.statuses.count(503) == 2  # and all retried
    assert max(len(texts) for texts in proxy.inputs) == 4
    assert_rate_held(proxy.arrivals, REQUESTS_PER_MINUTE)
    assert_no_key_in(output)
    captured = capfd.readouterr()
    assert API_KEY not in captured.out + captured.err + caplog.text
    assert API_KEY not in remote.log.read_text()


def test_metrics_count_requests_retries_and_throttled_waits(tmp_path, proxy, key_in_env):
    proxy.reset(throttle={3}, unavailable={5})
    endpoint = load_endpoints(endpoints_file(tmp_path / "endpoints.yaml", proxy.url)).get("remote-es-dense")
    records = [{"id": f"doc-{i}", "text": text} for i, text in enumerate(CORPUS)]
    pipeline = beam.Pipeline(options=PipelineOptions(IN_PROCESS))
    enriched, dead = pipeline | beam.Create(records) | Enrich(endpoint)
    result = pipeline.run()
    result.wait_until_finish()

    def metric(name: str):
        (found,) = result.metrics().query(MetricsFilter().with_name(name))["counters" if name.startswith("remote") else "distributions"]
        return found.committed

    sent = [texts for texts in proxy.inputs if texts != PROBE]  # the probe is setup's
    assert metric("remote_requests") == len(sent)
    assert metric("remote_retries") == 2
    assert metric("remote_throttled_waits") > 0  # 4 in flight, 10 a second allowed
    assert metric("batch_latency_ms").count == len(sent)
    assert max(len(texts) for texts in sent) == 4


@pytest.mark.parametrize("inference_id", ["remote-dense", "remote-es-dense"])
def test_summary_says_what_is_known_of_a_remote_endpoints_work(tmp_path, proxy, key_in_env, inference_id,
                                                               dense_runtime):
    """A remote endpoint tokenises nothing here: the summary shows the tokens the service
    reports (OpenAI's ``usage``), else the characters sent; never a made-up zero."""
    from inference_enrich.pipelines.summary import format_summary

    proxy.reset()
    texts = CORPUS[:12]
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": f"doc-{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    job = JobConfig(input=[str(source)], output=str(tmp_path / "out"), inference_id=inference_id,
                    endpoints=str(endpoints_file(tmp_path / "endpoints.yaml", proxy.url)))
    summary = run(job)
    shown = format_summary(summary, load_endpoints(job.endpoints).get(inference_id), job)
    assert not re.search(r"tokens +0 ", shown) and "(0 tokens/s" not in shown, shown
    if inference_id == "remote-dense":  # the remote is `enrich serve`: its count is our tokenizer's
        counted = sum(len(tokenized.ids) for tokenized in dense_runtime.tokenize(texts))
        assert summary.tokens == counted
        assert f"tokens          {counted:>10,}   (as the service reports them" in shown, shown
    else:
        assert summary.tokens == 0 and summary.characters == sum(map(len, texts))
        assert f"characters      {summary.characters:>10,}   (" in shown and "reports no token counts" in shown, shown


@pytest.mark.parametrize("inference_id, overrides, problem", [
    ("remote-dense", {"api_key": "wrong-key-0000"}, "refused a test request: HTTP 401: unable to authenticate"),
    ("remote-sparse", {"url": "http://127.0.0.1:{free}"}, "cannot connect"),
    ("remote-es-dense", {"inference_id": "no-such-endpoint"},
     "HTTP 404: Inference endpoint not found [no-such-endpoint]"),
])
def test_wrong_key_or_url_fails_at_start_in_one_line(tmp_path, proxy, key_in_env, capsys,
                                                     inference_id, overrides, problem):
    overrides = {key: value.format(free=free_port()) for key, value in overrides.items()}
    endpoints = endpoints_file(tmp_path / "endpoints.yaml", proxy.url, **{inference_id: overrides})
    source = write_corpus(tmp_path / "corpus.jsonl")
    code = main(["run", "--input", str(source), "--output", str(tmp_path / "out"), "--quiet",
                 "--endpoints", str(endpoints), "--inference-id", inference_id])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("enrich: error: ")
    assert problem in err
    assert "wrong-key-0000" not in err and API_KEY not in err
    assert not (tmp_path / "out").exists()
    assert len(proxy.arrivals) <= 1  # one probe, no documents sent


def test_a_remote_that_never_recovers_fails_the_job(tmp_path, proxy, key_in_env):
    proxy.reset(overload_marker="overload")
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": f"doc-{i}", "text": text}) + "\n"
                              for i, text in enumerate(CORPUS[:10] + ["overload " + CORPUS[10]])))
    output = tmp_path / "out"
    with pytest.raises(JobFailed, match=r"RemoteServiceError: .* gave up after 4 attempts, the last one: HTTP 503"):
        run(JobConfig(input=[str(source)], output=str(output), inference_id="remote-sparse",
                      endpoints=str(endpoints_file(tmp_path / "endpoints.yaml", proxy.url))))
    assert not (output / "_SUCCESS").exists() and not list(output.glob("part-*"))


def test_enrich_infer_with_a_remote_endpoint(tmp_path, proxy, key_in_env, capsys, sparse_runtime):
    endpoints = endpoints_file(tmp_path / "endpoints.yaml", proxy.url)
    assert main(["infer", "sparse_embedding", "remote-sparse", CORPUS[0], CORPUS[1],
                 "--endpoints", str(endpoints)]) == 0
    answer = json.loads(capsys.readouterr().out)
    expected = infer_texts(sparse_runtime, CORPUS[:2])
    assert [item["is_truncated"] for item in answer["sparse_embedding"]] == [False, False]
    for item, local in zip(answer["sparse_embedding"], expected, strict=True):
        assert item["embedding"] == pytest.approx(local.embedding, abs=TOLERANCE)
        assert list(item["embedding"].values()) == sorted(item["embedding"].values(), reverse=True)


def test_enrich_serve_relays_a_remote_endpoint_and_never_shows_its_key(remote, proxy, dense_runtime):
    auth = {"Authorization": f"ApiKey {API_KEY}"}
    body = {"service": "openai", "service_settings": {
        "url": f"{proxy.url}/v1/embeddings", "model_id": "my-minilm", "api_key": API_KEY}}
    put = http("PUT", f"{remote.url}/_inference/text_embedding/relay", body, auth)
    assert put.status == 200 and API_KEY not in json.dumps(put.body)
    try:
        got = http("GET", f"{remote.url}/_inference/relay", headers=auth)
        assert got.status == 200 and API_KEY not in json.dumps(got.body)
        assert got.body["endpoints"][0]["service_settings"]["model_id"] == "my-minilm"
        answer = http("POST", f"{remote.url}/_inference/text_embedding/relay", {"input": CORPUS[:3]}, auth)
        assert answer.status == 200
        for item, local in zip(answer.body["text_embedding"], infer_texts(dense_runtime, CORPUS[:3]), strict=True):
            assert item["embedding"] == pytest.approx(local.embedding, abs=TOLERANCE)
        override = http("POST", f"{remote.url}/_inference/text_embedding/relay",
                        {"input": CORPUS[:1], "task_settings": {"user": "someone"}}, auth)
        assert override.status == 400  # not accepted and silently dropped
        assert "cannot be overridden per request for the remote service [openai]" in override.body["error"]["reason"]
        refused = http("POST", f"{remote.url}/_inference/text_embedding/relay", {"input": [f"a {MARKER}"]}, auth)
        assert refused.status == 400 and f"refused word [{MARKER}]" in refused.body["error"]["reason"]
        wrong = dict(body, service_settings={**body["service_settings"], "api_key": "wrong-key-0000"})
        refused_put = http("PUT", f"{remote.url}/_inference/text_embedding/relay-wrong", wrong, auth)
        assert refused_put.status == 400 and "HTTP 401" in refused_put.body["error"]["reason"]
        assert "wrong-key-0000" not in json.dumps(refused_put.body)
    finally:
        http("DELETE", f"{remote.url}/_inference/relay", headers=auth)


def test_endpoints_listing_masks_keys(tmp_path, capsys):
    endpoints = endpoints_file(tmp_path / "endpoints.yaml", "http://127.0.0.1:1")
    assert main(["endpoints", "--endpoints", str(endpoints), "--json"]) == 0
    listing = capsys.readouterr().out
    assert API_KEY not in listing
    (dense,) = [row for row in json.loads(listing)["endpoints"] if row["inference_id"] == "remote-dense"]
    assert dense["service_settings"]["api_key"] == "***"
    assert main(["endpoints", "--endpoints", str(endpoints)]) == 0
    assert API_KEY not in capsys.readouterr().out


def test_a_named_key_variable_that_is_unset_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    endpoint = load_endpoints(endpoints_file(tmp_path / "endpoints.yaml", "http://127.0.0.1:1")).get("remote-sparse")
    with pytest.raises(EndpointConfigError,
                       match=f"endpoint 'remote-sparse': service_settings.api_key_env: the environment variable {KEY_ENV} is not set"):
        RemoteRuntime(endpoint)


@pytest.mark.parametrize("settings, problem", [
    ({"model_id": "m", "api_key": "k", "api_key_env": "K"}, "api_key_env: give api_key or api_key_env, not both"),
    ({"model_id": "m", "url": "ftp://host/v1/embeddings"}, "url: expected an http:// or https:// URL"),
    ({"model_id": "m", "api_key": 12345}, "api_key: expected the API key (sent as a Bearer token), got ***"),
    ({"model_id": "m", "max_inputs_per_request": 4096}, "max_inputs_per_request: expected an integer from 1 to 2048"),
    ({"model_id": "m", "rate_limit": {"requests_per_minute": 0}}, "rate_limit.requests_per_minute: expected"),
])
def test_settings_are_checked_at_load(tmp_path, settings, problem):
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"e": {
        "task_type": "text_embedding", "service": "openai", "service_settings": settings}}}))
    with pytest.raises(EndpointConfigError, match="endpoint 'e': service_settings.") as error:
        load_endpoints(path)
    assert problem in str(error.value)


@pytest.mark.parametrize("value, seconds", [("2", 2.0), ("0.5", 0.5), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
                                             ("soon", None), (None, None)])
def test_retry_after(value, seconds):
    assert retry_after_s({} if value is None else {"Retry-After": value}) == seconds


def test_retry_waits_what_the_server_asks_up_to_the_cap_and_backs_off_otherwise():
    settings = ClientSettings(requests_per_minute=60, max_concurrent_requests=1, timeout_s=5,
                              max_retries=3, initial_backoff_s=0.5, max_backoff_s=4.0)
    throttled = HttpAnswer(429, {"Retry-After": "7"}, {})
    assert retry_wait_s(throttled, 0, settings) == 7.0
    # A server asking for a day would stall the worker: it gets the cap.
    assert retry_wait_s(HttpAnswer(429, {"Retry-After": "86400"}, {}), 0, settings) == MAX_RETRY_AFTER_S
    # No Retry-After (or no answer at all: a timeout): jittered exponential backoff, capped.
    for retry, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 4.0)]:
        waits = [retry_wait_s(None, retry, settings) for _ in range(200)]
        assert all(0 <= wait <= cap for wait in waits) and max(waits) > cap / 2
        assert all(0 <= retry_wait_s(HttpAnswer(503, {}, {}), retry, settings) <= cap for _ in range(20))


@pytest.mark.parametrize("service, settings", [
    ("openai", {"model_id": "m", "api_key": "k"}),
    ("elasticsearch_remote", {"url": "http://127.0.0.1:1", "inference_id": "x"}),
])
def test_chunking_settings_on_a_remote_service_are_refused_at_load(tmp_path, service, settings):
    """Chunks are cut and batched around a local model's tokenizer; a remote endpoint with
    chunking_settings would be sent whole yet written as chunks, so it is refused up front."""
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"e": {
        "task_type": "text_embedding", "service": service, "service_settings": settings,
        "chunking_settings": {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 0}}}}))
    with pytest.raises(EndpointConfigError, match=f"endpoint 'e': chunking_settings: .*service '{service}'"):
        load_endpoints(path)


def test_an_openai_answer_with_wrong_indices_is_refused_not_misassigned():
    from inference_enrich.inference.errors import RemoteServiceError
    from inference_enrich.inference.remote.openai import OpenAIEmbeddings
    from inference_enrich.inference.remote.settings import OpenAIServiceSettings

    client = OpenAIEmbeddings(OpenAIServiceSettings(model_id="m", api_key="k"), {})
    answer = {"data": [{"index": 1, "embedding": [0.5]}, {"index": 0, "embedding": [0.25]}]}
    assert [result.embedding for result in client.parse(answer, 2)] == [[0.25], [0.5]]
    duplicated = {"data": [{"index": 0, "embedding": [0.5]}, {"index": 0, "embedding": [0.25]}]}
    with pytest.raises(RemoteServiceError, match=r"indices are not 0..1: \[0, 0\]"):
        client.parse(duplicated, 2)


def test_get_shows_no_password_held_in_a_remote_url():
    from inference_enrich.inference import Endpoint
    from inference_enrich.server.store import endpoint_to_body

    endpoint = Endpoint.from_body("remote", {
        "task_type": "sparse_embedding", "service": "elasticsearch_remote",
        "service_settings": {"url": "https://elastic:hunter2@127.0.0.1:9200", "inference_id": "elser"}})
    shown = json.dumps(endpoint_to_body(endpoint))
    assert "hunter2" not in shown and "127.0.0.1:9200" in shown


def test_a_text_that_is_not_valid_unicode_is_never_sent_to_a_remote(tmp_path, proxy, key_in_env):
    """No local tokenizer stands in front of a remote service; one that took a lone surrogate
    would hand the Parquet writer a text it cannot encode. It is a dead letter, not a request."""
    proxy.reset()
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "ok", "text": "Whales sing."}\n{"id": "half", "text": "broken \\ud83d emoji"}\n')
    output = tmp_path / "out"
    summary = run(JobConfig(input=[str(source)], output=str(output), inference_id="remote-dense",
                            endpoints=str(endpoints_file(tmp_path / "endpoints.yaml", proxy.url))))
    assert set(read_output(str(output))) == {"ok"}
    (letter,) = read_dead_letters(str(output))
    assert letter["stage"] == "inference" and letter["error"].startswith("UnicodeError: field 'text'")
    assert json.loads(letter["raw"])["id"] == "half"
    assert all("broken" not in text for texts in proxy.inputs for text in texts)
    assert (summary.records_written, summary.dead_letters) == (1, 1)
