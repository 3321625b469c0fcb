"""One endpoint store file, several writers: two ``enrich serve`` processes on the same store,
or a user editing the file by hand while a server runs. A PUT, ``_update`` or DELETE changes
the one endpoint it is about, on the file as it is at that moment; nobody else's endpoint
is dropped, and an invalid file is refused, never overwritten."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_enrich.inference import Endpoint, load_endpoints
from inference_enrich.inference.endpoint_store import read_overlay
from inference_enrich.server.errors import ApiError
from inference_enrich.server.store import EndpointStore

REPO = Path(__file__).resolve().parents[1]


def sparse(inference_id: str, top_k: int = 5) -> Endpoint:
    return Endpoint.from_body(inference_id, {
        "service": "transformers", "service_settings": {"model_id": "splade-tiny"},
        "task_settings": {"top_k": top_k}}, "sparse_embedding", source="test")


def own_ids(path: Path) -> set[str]:
    """The ids the store file itself holds (not the packaged ones underneath)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return set(document["endpoints"] or {})


def run(coroutine):
    return asyncio.run(coroutine)


def test_two_stores_on_one_file_keep_each_others_endpoints(tmp_path):
    """The tester's repro: server A puts x1, server B puts and deletes remote1; x1 stays."""
    path = tmp_path / "endpoints.yaml"
    a, b = EndpointStore(path), EndpointStore(path)
    run(a.create(sparse("x1")))
    run(b.create(sparse("remote1")))
    assert own_ids(path) == {"x1", "remote1"}
    run(b.delete("remote1"))
    assert own_ids(path) == {"x1"}
    assert load_endpoints(path).get("x1") == sparse("x1")  # what `enrich infer x1` reads
    # B sees A's endpoint, and refuses to create it twice.
    assert b.get("x1") == sparse("x1")
    with pytest.raises(ApiError) as exists:
        run(b.create(sparse("x1", top_k=9)))
    assert exists.value.status == 400 and "already exists" in exists.value.reason
    assert load_endpoints(path).get("x1") == sparse("x1")


def test_a_hand_edit_survives_a_put_and_shows_on_get(tmp_path):
    path = tmp_path / "endpoints.yaml"
    store = EndpointStore(path)
    run(store.create(sparse("made-over-rest")))
    text = path.read_text(encoding="utf-8") + textwrap.indent(textwrap.dedent("""\
        by-hand:
          task_type: sparse_embedding
          service: transformers
          service_settings: {model_id: splade-tiny}
          task_settings: {top_k: 7}
        """), "  ")
    path.write_text(text, encoding="utf-8")
    assert store.get("by-hand").task_settings == {"top_k": 7}  # visible at the next read
    run(store.create(sparse("another")))
    assert own_ids(path) == {"made-over-rest", "by-hand", "another"}
    run(store.delete("made-over-rest"))
    assert own_ids(path) == {"by-hand", "another"}
    assert load_endpoints(path).get("by-hand").task_settings == {"top_k": 7}


def test_an_update_applies_to_the_file_as_it_is_now(tmp_path):
    path = tmp_path / "endpoints.yaml"
    a, b = EndpointStore(path), EndpointStore(path)
    run(a.create(sparse("shared", top_k=1)))
    run(b.create(sparse("mine")))
    run(a.replace(sparse("shared", top_k=2)))
    assert own_ids(path) == {"shared", "mine"}
    assert load_endpoints(path).get("shared").task_settings == {"top_k": 2}
    run(a.delete("shared"))
    with pytest.raises(ApiError) as gone:  # B's view is stale, the file is not
        run(b.replace(sparse("shared", top_k=3)))
    assert gone.value.status == 404
    assert own_ids(path) == {"mine"}


@pytest.mark.parametrize("damage", ["endpoints: [not, a, mapping\n", "endpoints:\n  bad: {service: nope}\n"])
def test_an_invalid_file_is_refused_and_left_untouched(tmp_path, damage):
    path = tmp_path / "endpoints.yaml"
    store = EndpointStore(path)
    run(store.create(sparse("kept")))
    path.write_text(damage, encoding="utf-8")
    for change in (lambda: store.create(sparse("new")), lambda: store.replace(sparse("kept", top_k=2)),
                   lambda: store.delete("kept")):
        with pytest.raises(ApiError) as refused:
            run(change())
        assert refused.value.status == 500
        assert str(path) in refused.value.reason and "not changed" in refused.value.reason
        assert path.read_text(encoding="utf-8") == damage
    assert store.get("kept") == sparse("kept")  # the last good view keeps answering reads


OPERATIONS = st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from(["create", "replace", "delete"]),
                                st.sampled_from(["e1", "e2", "e3"]), st.integers(1, 3)), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_interleaved_changes_from_two_stores_equal_one_store(tmp_path_factory, operations):
    """Whatever two stores do to one file, in turn, the file holds what one store doing it
    all would hold, and each refusal (exists, not found) is the one that store would give."""
    path = tmp_path_factory.mktemp("interleaved") / "endpoints.yaml"
    stores = [EndpointStore(path), EndpointStore(path)]
    expected: dict[str, Endpoint] = {}

    async def play() -> None:
        for which, operation, inference_id, top_k in operations:
            store = stores[which]
            endpoint = sparse(inference_id, top_k)
            if operation == "create":
                if inference_id in expected:
                    with pytest.raises(ApiError):
                        await store.create(endpoint)
                else:
                    await store.create(endpoint)
                    expected[inference_id] = endpoint
            elif operation == "replace":
                if inference_id not in expected:
                    with pytest.raises(ApiError):
                        await store.replace(endpoint)
                else:
                    await store.replace(endpoint)
                    expected[inference_id] = endpoint
            else:
                if inference_id not in expected:
                    with pytest.raises(ApiError):
                        await store.delete(inference_id)
                else:
                    await store.delete(inference_id)
                    del expected[inference_id]
            assert read_overlay(path) == expected  # nothing written yet: no file, no endpoints

    asyncio.run(play())


WRITER = """
import asyncio, sys, time
from pathlib import Path
from inference_enrich.inference import Endpoint
from inference_enrich.server.store import EndpointStore

path, prefix, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
store = EndpointStore(path)
Path(f"{go}.{prefix}").touch()  # ready
while not go.exists():
    time.sleep(0.01)

async def main():
    for n in range(count):
        await store.create(Endpoint.from_body(f"{prefix}-{n}", {
            "service": "transformers", "service_settings": {"model_id": "splade-tiny"}},
            "sparse_embedding", source="writer"))
        if n % 3 == 0:
            await store.delete(f"{prefix}-{n}")

asyncio.run(main())
"""


def test_concurrent_puts_from_two_processes_lose_nothing(tmp_path):
    path, go = tmp_path / "endpoints.yaml", tmp_path / "go"
    count = 30
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(count), str(go)],
                                stderr=subprocess.PIPE, text=True)
               for prefix in ("a", "b")]
    deadline = time.monotonic() + 600
    while not all(Path(f"{go}.{prefix}").exists() for prefix in ("a", "b")):  # both started
        assert time.monotonic() < deadline and all(w.poll() is None for w in writers)
        time.sleep(0.05)
    go.touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=600)
        assert writer.returncode == 0, stderr
    expected = {f"{prefix}-{n}" for prefix in ("a", "b") for n in range(count) if n % 3 != 0}
    assert own_ids(path) == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".endpoints.yaml")] == []  # no temp file left


def test_an_update_of_an_endpoint_changed_meanwhile_is_a_conflict(tmp_path):
    path = tmp_path / "endpoints.yaml"
    a, b = EndpointStore(path), EndpointStore(path)
    run(a.create(sparse("shared", top_k=1)))
    read_by_a = a.get("shared")  # what A's _update is computed from
    run(b.replace(sparse("shared", top_k=2)))
    with pytest.raises(ApiError) as conflict:
        run(a.replace(sparse("shared", top_k=3), based_on=read_by_a))
    assert conflict.value.status == 409 and conflict.value.error_type == "version_conflict_engine_exception"
    assert load_endpoints(path).get("shared").task_settings == {"top_k": 2}
    run(a.replace(sparse("shared", top_k=3), based_on=a.get("shared")))  # sent again: applied
    assert load_endpoints(path).get("shared").task_settings == {"top_k": 3}


def test_other_entries_are_written_back_as_they_were_read(tmp_path):
    path = tmp_path / "endpoints.yaml"
    hand = {"first": {"task_type": "sparse_embedding", "service": "transformers",
                      "service_settings": {"model_id": "splade-tiny"}},
            "second": {"task_type": "sparse_embedding", "service": "transformers",
                       "service_settings": {"model_id": "splade-tiny"}, "task_settings": {"top_k": 2}}}
    path.write_text(yaml.safe_dump({"endpoints": hand}), encoding="utf-8")
    store = EndpointStore(path)
    run(store.replace(sparse("first", top_k=4)))
    run(store.create(sparse("third")))
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))["endpoints"]
    assert list(entries) == ["first", "second", "third"]  # an updated entry keeps its place
    assert entries["second"] == hand["second"]  # not re-spelt
    assert entries["first"]["task_settings"] == {"top_k": 4}
