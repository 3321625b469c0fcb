"""``enrich serve`` under abuse (issue #23): privileges, model sources, overload, huge inputs,
resources that follow endpoints, and the one endpoint store every command reads.

One real server process (API keys with roles, a model root, a small bound on queued texts,
the default endpoint store under its own ``ENRICH_HOME``) driven over HTTP by the official
elasticsearch-py and openai clients, and by plain HTTP where the wire is the point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import openai
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from elasticsearch import AuthorizationException, BadRequestError, Elasticsearch, ElasticsearchWarning

from conftest import SEED_TEXT
from inference_enrich.inference import infer_texts, load_endpoints, load_runtime
from inference_enrich.inference.models import resolve_model_path
from serve_helpers import enrich_server, http
from services import free_port

READER, ADMIN, PLAIN = "reader-key-0001", "admin-key-0002", "plain-key-0003"
MAX_QUEUED = 50
TOLERANCE = 1e-5
LONG_TEXT = " ".join([SEED_TEXT] * 30)  # ~500 tokens: cut at 512
CLI = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {key}"}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("enrich-home")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A model root holding a link to the packaged SPLADE model and an empty directory."""
    models = tmp_path_factory.mktemp("models")
    (models / "splade").symlink_to(resolve_model_path("splade-tiny"))
    (models / "empty").mkdir()
    return models


@pytest.fixture(scope="module")
def server(tmp_path_factory, home, root):
    work = tmp_path_factory.mktemp("abuse")
    keys = work / "keys.txt"
    keys.write_text(f"# key and role\n{READER} monitor_inference\n{PLAIN}\n")
    with enrich_server(work, "--api-keys-file", str(keys), "--model-root", str(root),
                       "--max-queued-texts", str(MAX_QUEUED), "--no-access-log", store=True,
                       env={"ENRICH_API_KEYS": f"{ADMIN}:manage_inference", "ENRICH_HOME": str(home)}) as running:
        yield running


def es_client(server, key: str) -> Elasticsearch:
    return Elasticsearch(server.url, api_key=key, request_timeout=300, max_retries=0,
                         retry_on_status=())


# ------------------------------------------------------------------ 1. privileges


def test_a_monitor_key_runs_endpoints_but_cannot_manage_them(server):
    body = {"service": "transformers", "service_settings": {"model_id": "splade-tiny"}}
    with es_client(server, READER) as reader, es_client(server, ADMIN) as admin:
        assert "port" in reader.inference.sparse_embedding(
            inference_id="my-elser-model", input=SEED_TEXT).body["sparse_embedding"][0]["embedding"]
        assert reader.inference.get(inference_id="my-minilm").body["endpoints"][0]["inference_id"] == "my-minilm"
        for call in (lambda: reader.inference.put(task_type="sparse_embedding", inference_id="by-reader",
                                                  inference_config=body),
                     lambda: reader.inference.update(inference_id="my-elser-model",
                                                     inference_config={"task_settings": {"top_k": 1}}),
                     lambda: reader.inference.delete(inference_id="my-elser-model")):
            with pytest.raises(AuthorizationException) as refused:
                call()
            assert refused.value.meta.status == 403
            error = refused.value.body["error"]
            assert error["type"] == error["root_cause"][0]["type"] == "security_exception"
            assert "manage_inference" in error["reason"] and refused.value.body["status"] == 403
        assert "by-reader" not in [e["inference_id"] for e in admin.inference.get().body["endpoints"]]
        assert admin.inference.put(task_type="sparse_embedding", inference_id="by-admin",
                                   inference_config=body).body["inference_id"] == "by-admin"
        assert admin.inference.delete(inference_id="by-admin").body == {"acknowledged": True}
    # A key without a role has every privilege, as an Elasticsearch API key without role
    # descriptors has its owner's; the OpenAI route is a monitor's.
    assert http("PUT", f"{server.url}/_inference/sparse_embedding/by-plain", body, auth(PLAIN)).status == 200
    assert http("DELETE", f"{server.url}/_inference/by-plain", headers=auth(PLAIN)).status == 200
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key=READER, max_retries=0)
    assert len(api.embeddings.create(model="my-minilm", input="x").data[0].embedding) == 384
    log = server.log.read_text()
    assert "API keys required (1 monitor_inference, 2 manage_inference)" in log
    assert READER not in log and ADMIN not in log


def test_unknown_role_is_refused_at_start(tmp_path):
    done = subprocess.run([*CLI, "serve", "--port", str(free_port())], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ENRICH_API_KEYS": "k:superuser"})
    assert done.returncode == 2 and "unknown role 'superuser'" in done.stderr


# ------------------------------------------------------------------ 2. model sources


def test_a_model_outside_the_roots_gets_one_answer_that_reveals_nothing(server, root, tmp_path):
    outside = tmp_path / "a-model"
    outside.mkdir()
    answers = {}
    for model_id in ("/etc", "/root/.nope", f"{root}/../etc", str(outside), "org/hub-model", str(root)):
        answer = http("PUT", f"{server.url}/_inference/sparse_embedding/probe", {
            "service": "transformers", "service_settings": {"model_id": model_id}}, auth(ADMIN))
        assert answer.status == 400, (model_id, answer.body)
        answers[model_id] = json.dumps(answer.body).replace(json.dumps(model_id)[1:-1], "MODEL")
    assert len(set(answers.values())) == 1, answers  # the same words whatever is on the disk
    assert "is not a model this server may load" in answers["/etc"]
    updated = http("PUT", f"{server.url}/_inference/my-elser-model/_update",
                   {"service_settings": {"model_id": "/etc"}}, auth(ADMIN))
    assert updated.status == 400
    assert json.dumps(updated.body).replace("/etc", "MODEL") == answers["/etc"]

    # Under a root: a model loads; a directory that is none says so (the operator's disk).
    with es_client(server, ADMIN) as es:
        es.inference.put(task_type="sparse_embedding", inference_id="from-root", inference_config={
            "service": "transformers", "service_settings": {"model_id": str(root / "splade")}})
        ours = es.inference.sparse_embedding(inference_id="from-root", input=SEED_TEXT).body
        packaged = es.inference.sparse_embedding(inference_id="my-elser-model", input=SEED_TEXT).body
        assert ours == packaged
        es.inference.delete(inference_id="from-root")
        with pytest.raises(BadRequestError) as empty:
            es.inference.put(task_type="sparse_embedding", inference_id="empty", inference_config={
                "service": "transformers", "service_settings": {"model_id": str(root / "empty")}})
        assert "Could not load the model of [empty]" in empty.value.body["error"]["reason"]


# ------------------------------------------------------------------ 3. overload


def test_200_clients_against_a_bound_of_50_get_200s_and_429s_then_normal_service(server, sparse_runtime):
    clients = 200
    start = threading.Barrier(clients)
    answers: list = [None] * clients

    def one(index: int) -> None:
        start.wait(timeout=120)
        answers[index] = http("POST", f"{server.url}/_inference/sparse_embedding/my-elser-model",
                              {"input": [LONG_TEXT] * 4}, auth(READER), timeout=300)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    statuses = [answer.status for answer in answers]
    assert set(statuses) <= {200, 429}, statuses
    refused = [answer for answer in answers if answer.status == 429]
    assert refused and statuses.count(200) >= MAX_QUEUED // 4
    for answer in refused:
        error = answer.body["error"]
        assert error["type"] == error["root_cause"][0]["type"] == "es_rejected_execution_exception"
        assert answer.body["status"] == 429 and answer.headers["retry-after"] == "1"
        assert answer.headers["x-elastic-product"] == "Elasticsearch"
    metrics = http("GET", f"{server.url}/metrics", headers=auth(READER)).body
    counted = re.search(r'^enrich_rejected_requests_total\{inference_id="my-elser-model"\} (\S+)$', metrics, re.M)
    assert counted and float(counted.group(1)) == len(refused)

    after = http("POST", f"{server.url}/_inference/sparse_embedding/my-elser-model", {"input": SEED_TEXT},
                 auth(READER))
    assert after.status == 200
    expected = infer_texts(sparse_runtime, [SEED_TEXT])[0].embedding
    got = after.body["sparse_embedding"][0]["embedding"]
    assert max(abs(got.get(token, 0) - weight) for token, weight in expected.items()) <= TOLERANCE


# ------------------------------------------------------------------ 4. huge inputs


def test_a_9_mb_input_is_cut_to_what_the_model_sees_and_others_are_answered_meanwhile(server, sparse_runtime):
    huge = " ".join(re.sub(r"\W", "", word) or "x" for word in (SEED_TEXT + " ") * 10) * 2
    huge = (huge + " ") * (9_000_000 // (len(huge) + 1))
    results: dict = {}

    def big() -> None:
        results["big"] = http("POST", f"{server.url}/_inference/sparse_embedding/my-elser-model",
                              {"input": huge}, auth(READER), timeout=300)

    thread = threading.Thread(target=big)
    thread.start()
    small = http("POST", f"{server.url}/_inference/sparse_embedding/my-elser-model", {"input": SEED_TEXT},
                 auth(READER))
    thread.join(timeout=300)
    assert small.status == 200
    answer = results["big"]
    assert answer.status == 200, answer.body
    (item,) = answer.body["sparse_embedding"]
    assert item["is_truncated"] is True
    expected = infer_texts(sparse_runtime, [huge[:20_000]])[0]  # the same 510 word pieces
    assert expected.is_truncated
    assert max(abs(item["embedding"].get(token, 0) - weight)
               for token, weight in expected.embedding.items()) <= TOLERANCE


# ------------------------------------------------------------------ 5. resources follow endpoints


def server_threads(server) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/task"))


def test_updating_a_remote_endpoint_20_times_leaves_no_thread_behind(server):
    body = {"service": "openai", "service_settings": {
        "url": f"{server.url}/v1/embeddings", "model_id": "my-minilm", "api_key": READER, "max_retries": 1}}
    relay = f"{server.url}/_inference/text_embedding/relay"
    before = server_threads(server)
    assert http("PUT", relay, body, auth(ADMIN)).status == 200
    try:
        assert http("POST", relay, {"input": "x"}, auth(READER)).status == 200
        with_one = server_threads(server)
        for attempt in range(20):
            update = http("PUT", f"{relay}/_update",
                          {"service_settings": {"initial_backoff_s": 0.1 + attempt / 100}}, auth(ADMIN))
            assert update.status == 200, update.body
            assert http("POST", relay, {"input": f"x {attempt}"}, auth(READER)).status == 200
        for _ in range(100):  # closing is asynchronous: give the loops a moment to end
            if server_threads(server) <= with_one:
                break
            time.sleep(0.1)
        assert server_threads(server) <= with_one, (before, with_one, server_threads(server))
    finally:
        assert http("DELETE", f"{server.url}/_inference/relay", headers=auth(ADMIN)).status == 200
    for _ in range(100):
        if server_threads(server) <= before:
            break
        time.sleep(0.1)
    assert server_threads(server) <= before


# ------------------------------------------------------------------ 6. one endpoint store


def test_an_endpoint_put_over_rest_is_used_by_every_command(server, home):
    config = {"service": "transformers", "service_settings": {"model_id": "splade-tiny"},
              "task_settings": {"top_k": 3}}
    store = home / "endpoints.yaml"
    assert f"endpoints from {store}" in server.log.read_text()  # serve says where its store is
    with es_client(server, ADMIN) as es:
        es.inference.put(task_type="sparse_embedding", inference_id="my-new", inference_config=config)
        with pytest.raises(BadRequestError) as packaged:
            es.inference.delete(inference_id="my-minilm")
        assert "packaged endpoint" in packaged.value.body["error"]["reason"]
    try:
        env = {**os.environ, "ENRICH_HOME": str(home)}
        infer = subprocess.run([*CLI, "infer", "sparse_embedding", "my-new", SEED_TEXT], env=env,
                               capture_output=True, text=True, timeout=600)
        assert infer.returncode == 0, infer.stderr
        assert len(json.loads(infer.stdout)["sparse_embedding"][0]["embedding"]) == 3
        listing = subprocess.run([*CLI, "endpoints"], env=env, capture_output=True, text=True, timeout=600)
        assert listing.returncode == 0, listing.stderr
        assert f"# {store} over the packaged endpoints" in listing.stdout
        assert re.search(r"^my-new\s", listing.stdout, re.M) and re.search(r"^my-minilm\s", listing.stdout, re.M)
        # The store holds only what differs from the packaged endpoints.
        assert "my-new" in store.read_text() and "my-minilm" not in store.read_text()
    finally:
        assert http("DELETE", f"{server.url}/_inference/my-new", headers=auth(ADMIN)).status == 200
    missing = subprocess.run([*CLI, "infer", "sparse_embedding", "my-new", "x"], capture_output=True, text=True,
                             env={**os.environ, "ENRICH_HOME": str(home)}, timeout=600)
    assert missing.returncode != 0 and f"Inference endpoint not found [my-new] in {store}" in missing.stderr


def test_a_second_server_and_a_hand_edit_on_the_same_store_keep_each_others_endpoints(server, home, tmp_path):
    """The hostile tester's repro: A puts x1; B (same store) puts and deletes remote1; a hand
    edit adds by-hand; B puts remote2. Nothing anyone else wrote is dropped, and each server
    sees the others' endpoints at its next request."""
    store = home / "endpoints.yaml"
    sparse = {"service": "transformers", "service_settings": {"model_id": "splade-tiny"}}
    remote = {"service": "openai", "service_settings": {
        "url": f"{server.url}/v1/embeddings", "model_id": "my-minilm", "api_key": READER, "max_retries": 1}}
    with enrich_server(tmp_path, "--no-access-log", store=True, env={"ENRICH_HOME": str(home)}) as second:
        assert http("PUT", f"{server.url}/_inference/sparse_embedding/x1", sparse, auth(ADMIN)).status == 200
        try:
            assert http("GET", f"{second.url}/_inference/x1").status == 200  # B sees A's endpoint
            assert http("PUT", f"{second.url}/_inference/sparse_embedding/x1", sparse).status == 400  # exists
            assert http("PUT", f"{second.url}/_inference/text_embedding/remote1", remote).status == 200
            assert http("DELETE", f"{second.url}/_inference/remote1").status == 200
            assert load_endpoints(store).get("x1").model_id == "splade-tiny"  # what `enrich infer x1` reads
            document = yaml.safe_load(store.read_text())
            document["endpoints"]["by-hand"] = {"task_type": "sparse_embedding", **sparse, "task_settings": {"top_k": 4}}
            store.write_text(yaml.safe_dump(document))
            shown = http("GET", f"{server.url}/_inference/by-hand", headers=auth(ADMIN))
            assert shown.status == 200 and shown.body["endpoints"][0]["task_settings"] == {"top_k": 4}
            assert http("PUT", f"{second.url}/_inference/text_embedding/remote2", remote).status == 200
            assert set(yaml.safe_load(store.read_text())["endpoints"]) == {"x1", "by-hand", "remote2"}
        finally:
            for inference_id in ("x1", "by-hand", "remote2"):
                http("DELETE", f"{second.url}/_inference/{inference_id}")
    assert yaml.safe_load(store.read_text()) == {"endpoints": {}}


def test_an_invalid_store_file_is_refused_by_put_and_left_untouched(server, home):
    store = home / "endpoints.yaml"
    before = store.read_text() if store.exists() else None
    store.write_text("endpoints: [torn\n")
    try:
        answer = http("PUT", f"{server.url}/_inference/sparse_embedding/x2",
                      {"service": "transformers", "service_settings": {"model_id": "splade-tiny"}}, auth(ADMIN))
        assert answer.status == 500, answer.body
        assert str(store) in answer.body["error"]["reason"] and "not valid YAML" in answer.body["error"]["reason"]
        assert store.read_text() == "endpoints: [torn\n"
        assert http("GET", f"{server.url}/_inference/my-elser-model", headers=auth(ADMIN)).status == 200
    finally:
        if before is None:
            store.unlink()
        else:
            store.write_text(before)


def test_elasticsearch_built_in_models_map_to_the_packaged_ones_and_say_so(server):
    with es_client(server, ADMIN) as es:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            elser = es.inference.put(task_type="sparse_embedding", inference_id="es-elser", inference_config={
                "service": "elasticsearch", "service_settings": {
                    "model_id": ".elser_model_2_linux-x86_64", "num_allocations": 1, "num_threads": 1}})
        assert elser.body["service"] == "transformers"
        assert elser.body["service_settings"]["model_id"] == "splade-tiny"
        assert any(issubclass(w.category, ElasticsearchWarning) and "mapped to service [transformers] model "
                   "[splade-tiny]" in str(w.message) for w in said), [str(w.message) for w in said]
        with pytest.warns(ElasticsearchWarning, match="English only"):
            e5 = es.inference.put(task_type="text_embedding", inference_id="es-e5", inference_config={
                "service": "elasticsearch", "service_settings": {"model_id": ".multilingual-e5-small"}})
        assert e5.body["service_settings"]["model_id"] == "all-minilm-l6-v2"
        try:
            assert (es.inference.sparse_embedding(inference_id="es-elser", input=SEED_TEXT).body
                    == es.inference.sparse_embedding(inference_id="my-elser-model", input=SEED_TEXT).body)
            with pytest.raises(BadRequestError) as unknown:
                es.inference.put(task_type="rerank", inference_id="es-rerank", inference_config={
                    "service": "elasticsearch", "service_settings": {"model_id": ".rerank-v1"}})
            reason = unknown.value.body["error"]["reason"]
            assert ".elser_model_2* -> splade-tiny" in reason and "--model-root" in reason

            models = openai.OpenAI(base_url=f"{server.url}/v1", api_key=READER, max_retries=0).models.list()
            assert sorted(model.id for model in models.data) == ["es-e5", "my-minilm"]
        finally:
            es.inference.delete(inference_id="es-elser")
            es.inference.delete(inference_id="es-e5")


class RecordingRuntime:
    """The real runtime, noting which thread tokenises and embeds, and how much."""

    def __init__(self, runtime) -> None:
        self._runtime = runtime
        self.task_type = runtime.task_type
        self.tokenizes_locally = True
        self.max_sequence_length = runtime.max_sequence_length
        self.tokenized: list[tuple[str, int]] = []  # (thread, longest text in characters)
        self.embedded: list[tuple[str, int]] = []  # (thread, longest text in tokens)

    def tokenize(self, texts):
        self.tokenized.append((threading.current_thread().name, max(map(len, texts))))
        return self._runtime.tokenize(texts)

    def embed(self, batch):
        self.embedded.append((threading.current_thread().name, max(len(text.ids) for text in batch)))
        return self._runtime.embed(batch)


def test_tokenizing_runs_off_the_model_thread_on_texts_cut_to_what_the_model_sees(endpoints, monkeypatch):
    from inference_enrich.server import model_worker
    from inference_enrich.server.batch_policy import BatchPolicy

    recorded: list[RecordingRuntime] = []

    def load(endpoint):
        recorded.append(RecordingRuntime(load_runtime(endpoint)))
        return recorded[-1]

    monkeypatch.setattr(model_worker, "load_runtime", load)
    worker = model_worker.ModelWorker(endpoints.get("my-elser-model"), BatchPolicy(),
                                      lambda *observed: None)
    huge = "word " * 2_000_000
    try:
        first = worker.submit([huge, SEED_TEXT]).result(timeout=300)
        again = worker.submit([SEED_TEXT, huge]).result(timeout=300)  # the model is loaded by now
    finally:
        worker.close()
        worker.join(60)
    (runtime,) = recorded
    limit = runtime.max_sequence_length
    assert [r.is_truncated for r in first.results] == [True, False] and again.results[1].is_truncated
    assert all(not thread.startswith("model-") for thread, _ in runtime.tokenized), runtime.tokenized
    assert max(length for _, length in runtime.tokenized) <= limit * 32 < len(huge)
    assert {thread for thread, _ in runtime.embedded} == {"model-splade-tiny"}
    assert max(tokens for _, tokens in runtime.embedded) <= limit


class StallingRuntime(RecordingRuntime):
    """The real runtime, but tokenising a text longer than the cut waits until ``release``
    is set: it stands in for the tens of seconds a 9 MB text without spaces costs the real
    tokenizer (measured: 27 s whole, 64 s through the doubling cut), which a test cannot
    wait for. Only the waiting is simulated; every result is the real tokenizer's."""

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.release = threading.Event()

    def tokenize(self, texts):
        if max(map(len, texts)) > self.max_sequence_length * 32:
            self.release.wait(120)
        return super().tokenize(texts)


def test_huge_texts_without_spaces_do_not_hold_up_small_requests(endpoints, monkeypatch):
    """Two requests of a 9 MB text with no whitespace (one [UNK] token: the cut never holds
    enough tokens, so the text is tokenised whole) used to take both tokenizer threads, and
    every small request behind them waited until they were done (found by a hostile test:
    408s). A small request is tokenised and answered while both are still tokenising."""
    from inference_enrich.server import model_worker
    from inference_enrich.server.batch_policy import BatchPolicy
    from inference_enrich.server.tokenizing import tokenizer_pool

    recorded: list[StallingRuntime] = []

    def load(endpoint):
        recorded.append(StallingRuntime(load_runtime(endpoint)))
        return recorded[-1]

    monkeypatch.setattr(model_worker, "load_runtime", load)
    pool = tokenizer_pool()
    worker = model_worker.ModelWorker(endpoints.get("my-elser-model"), BatchPolicy(),
                                      lambda *observed: None, pool)
    huge = "x" * 200_000  # longer than the cut; the stall stands in for the size of 9 MB
    try:
        worker.load().result(timeout=300)
        big = [worker.submit([huge]) for _ in range(2)]
        small = worker.submit([SEED_TEXT]).result(timeout=60)
        assert not any(future.done() for future in big)
        recorded[0].release.set()
        answers = [future.result(timeout=300) for future in big]
    finally:
        for runtime in recorded:
            runtime.release.set()
        worker.close()
        worker.join(60)
        pool.shutdown(wait=False)
    assert small.results[0].is_truncated is False and small.results[0].embedding
    assert [answer.results[0].is_truncated for answer in answers] == [False, False]  # one [UNK] token


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["port", "sky", "television", "antidisestablishment", "a.b", "é"]),
                          st.integers(1, 600)), min_size=1, max_size=400))
def test_cutting_before_tokenizing_changes_no_result(sparse_runtime, pieces):
    from inference_enrich.server.tokenizing import tokenize_cut

    text = "".join(word + " " * spaces for word, spaces in pieces) + " ".join(["sky"] * (len(pieces) % 700))
    assert tokenize_cut(sparse_runtime, [text]) == sparse_runtime.tokenize([text])


def test_a_dot_dot_after_a_link_inside_a_root_cannot_reach_outside_it(tmp_path):
    """`root/link/../x` collapses to `root/x` as text, but the OS resolves `link/..` to the
    link target's parent: a request could load any directory next to where a link points.
    A model path naming `..` is refused whatever it collapses to (found by a hostile test)."""
    from inference_enrich.server.model_sources import ModelRoots

    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "model").mkdir(parents=True)
    root.mkdir()
    (root / "link").symlink_to(outside / "model")
    roots = ModelRoots.of([str(root)])
    assert roots.allows(str(root / "link"))  # a link the operator placed is followed
    escape = f"{root}/link/../model"  # the OS reads outside/model; as text it is root/model
    assert os.path.realpath(escape) == str(outside / "model")
    assert not roots.allows(escape)
    assert not roots.allows(f"{root}/sub/../link")


# ------------------------------------------------------------------ 6. deeply nested bodies

NESTING_LIMIT = 100  # server/request_parsing.py's MAX_NESTING_DEPTH; the README says 100
DEEP_ROUTES = {  # route -> the body around the deep value (the route's own object is level 1)
    ("POST", "/_inference/my-elser-model"): ('{"input": ', "}"),
    ("PUT", "/_inference/sparse_embedding/deep"): (
        '{"service": "transformers", "service_settings": {"model_id": "splade-tiny", "deep": ', "}}"),
    ("PUT", "/_inference/my-elser-model/_update"): ('{"task_settings": {"deep": ', "}}"),
    ("POST", "/v1/embeddings"): ('{"model": "my-elser-model", "input": ', "}"),
}


def deep_json(depth: int, shape: list[bool]) -> str:
    """A value ``depth`` arrays and objects deep around a string, level i an object when
    ``shape[i % len(shape)]`` (written out: json.dumps itself cannot go that deep)."""
    kinds = [shape[level % len(shape)] for level in range(depth)]
    return ("".join('{"k": ' if is_object else "[" for is_object in kinds) + '"x"'
            + "".join("}" if is_object else "]" for is_object in reversed(kinds)))


def post_deep(server, method: str, path: str, value: str):
    before, after = DEEP_ROUTES[(method, path)]
    return http(method, f"{server.url}{path}", raw=(before + value + after).encode(), headers=auth(ADMIN))


def reason_of(answer) -> str:
    error = answer.body["error"]
    return error.get("reason") or error["message"]  # Elasticsearch's envelope, or OpenAI's on /v1


@pytest.mark.parametrize("depth", [100_000, 600_000])  # 600 000 levels: over 1 MiB, parsed in a thread
def test_a_deeply_nested_body_is_a_400_on_every_json_route(server, depth):
    value = deep_json(depth, [False])
    for method, path in DEEP_ROUTES:
        answer = post_deep(server, method, path, value)
        assert answer.status == 400, (method, path, answer.body)
        assert reason_of(answer) == (
            f"request body is nested too deeply: more than {NESTING_LIMIT} levels of arrays and objects")
    assert "RecursionError" not in server.log.read_text(errors="replace")


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 3000), st.lists(st.booleans(), min_size=1, max_size=5),
       st.sampled_from(sorted(DEEP_ROUTES)))
@example(98, [True], ("PUT", "/_inference/sparse_embedding/deep"))  # 100 levels: parsed, then refused
@example(98, [True], ("PUT", "/_inference/my-elser-model/_update"))
@example(99, [False, True], ("POST", "/_inference/my-elser-model"))
@example(99, [True], ("POST", "/v1/embeddings"))
@example(99, [True], ("PUT", "/_inference/sparse_embedding/deep"))  # 101 levels
def test_nesting_of_any_depth_and_shape_is_answered_never_a_500(server, depth, shape, route):
    """Two levels or more are never a valid body for these routes (no endpoint changes): a 400
    for what is wrong with it, or, beyond the limit, for its depth, whatever its shape."""
    answer = post_deep(server, *route, deep_json(depth, shape))
    too_deep = "nested too deeply" in reason_of(answer)
    assert answer.status == 400, (depth, shape, route, answer.body)
    levels = depth + len(DEEP_ROUTES[route][1])  # the route's own objects around the value
    assert too_deep == (levels > NESTING_LIMIT), (depth, shape, route, answer.body)
