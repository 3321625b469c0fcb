"""Search-index sinks against real servers (noida-db for the Elasticsearch API, osmem-server
for the OpenSearch API) and the embedded index in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager

import pytest

from inference_enrich.indexes import IndexSettings, IndexSpec, open_index
from inference_enrich.indexes.base import DOT_REPLACEMENT
from inference_enrich.indexes.embedded import EmbeddedIndex
from inference_enrich.inference import infer_texts
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.indexes.cluster_bulk import TransientBulkError
from inference_enrich.indexes.query import search_index
from inference_enrich.transforms.write_index import (
    MAX_BUFFERING_SECONDS,
    OneWriterBatches,
    WriteToSearchIndex,
    write_by_id,
)

from fault_proxy import NO_ANSWER, FaultProxy
from pipeline_helpers import read_dead_letters, read_output, run, sparse, write_lines

QUERIES = ["whale at sea", "liberty and government", "a rabbit with pink eyes", "time travel",
           "winter wind and rain"]


@pytest.fixture(scope="module")
def exact_vectors(tmp_path_factory):
    """Sample-corpus vectors from the Parquet sink: the reference for rankings."""
    output = str(tmp_path_factory.mktemp("parquet") / "out")
    run(JobConfig(output=output))
    return {doc_id: sparse(row) for doc_id, row in read_output(output).items()}


def exact_scores(query_vector: dict[str, float], vectors: dict) -> dict[str, float]:
    return {doc_id: sum(w * vector.get(t, 0.0) for t, w in query_vector.items())
            for doc_id, vector in vectors.items()}


def assert_same_ranking(hits, scores: dict[str, float], relative: float) -> None:
    """Rank by rank, each hit's exact score equals the exact ranking's score at that rank
    (within ``relative``: Elasticsearch and OpenSearch store weights with 9 significant
    bits, so near-ties may swap, but nothing else may)."""
    expected = sorted(scores, key=scores.get, reverse=True)[: len(hits)]
    assert len(hits) == 10
    for hit, reference in zip(hits, expected):
        assert scores[hit.doc_id] == pytest.approx(scores[reference], rel=relative, abs=1e-6)
        assert hit.score == pytest.approx(scores[hit.doc_id], rel=relative, abs=1e-6)


def settings_for(kind: str, request, tmp_path) -> IndexSettings:
    if kind == "elasticsearch":
        return IndexSettings(kind, url=request.getfixturevalue("elasticsearch_url"), index=f"t-{tmp_path.name}".lower())
    if kind == "opensearch":
        return IndexSettings(kind, url=request.getfixturevalue("opensearch_url"), index=f"t-{tmp_path.name}".lower())
    return IndexSettings("embedded", path=str(tmp_path / "idx"))


def job_for(settings: IndexSettings, output: str, **extra) -> JobConfig:
    return JobConfig(output=output, sink=settings.kind, es_url=settings.url, index=settings.index,
                     index_path=settings.path, **extra)


@pytest.mark.parametrize("kind, relative", [("elasticsearch", 0.01), ("opensearch", 0.01), ("embedded", 1e-5)])
def test_index_sample_corpus_rerun_and_rank_exactly(kind, relative, request, tmp_path, exact_vectors,
                                                   endpoints, sparse_runtime):
    settings = settings_for(kind, request, tmp_path)
    summary = run(job_for(settings, str(tmp_path / "out")))
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (41, 41, 0)
    assert summary.index_documents == 41
    assert summary.tokens_renamed > 0  # '.' tokens: the dot rule applied

    again = run(job_for(settings, str(tmp_path / "out")))  # ids are record ids: no duplicates
    assert again.index_documents == 41

    endpoint = endpoints.get("my-elser-model")
    for query in QUERIES:
        hits = search_index(settings, query, endpoint, "embedding", 10)
        (expanded,) = infer_texts(sparse_runtime, [query])
        assert_same_ranking(hits, exact_scores(expanded.embedding, exact_vectors), relative)
        assert all("text" in hit.source for hit in hits)


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_rejected_bulk_item_becomes_a_dead_letter(kind, request, tmp_path):
    settings = settings_for(kind, request, tmp_path)
    source = write_lines(tmp_path / "in.jsonl", [
        b'{"id": "a", "text": "Whales sing.", "year": 1851}',
        b'{"id": "b", "text": "Ships sail.", "year": "not a number"}',
        b'{"id": "c", "text": "Stars shine.", "year": 1900}',
    ])
    # Map "year" as a number first, so the second record is rejected whatever order the
    # bulk request has.
    seed = write_lines(tmp_path / "seed.jsonl", [b'{"id": "s", "text": "seed", "year": 1}'])
    run(job_for(settings, str(tmp_path / "seed"), input=[str(seed)]))
    summary = run(job_for(settings, str(tmp_path / "out"), input=[str(source)]))
    assert (summary.records_written, summary.dead_letters) == (2, 1)
    (letter,) = read_dead_letters(str(tmp_path / "out"))
    assert letter["stage"] == "index" and letter["line"] == 2
    assert letter["record"] == {"id": "b", "text": "Ships sail.", "year": "not a number"}
    assert "rejected the document (status 400)" in letter["error"] and "year" in letter["error"]
    assert summary.index_documents == 3  # seed + a + c


def indexed_ids(settings: IndexSettings) -> set[str]:
    index = open_index(settings)
    try:
        index.count()  # refreshes
        hits = index._client.search(index=settings.index, body={"query": {"match_all": {}}, "size": 1000,
                                                               "_source": False})["hits"]["hits"]
        return {hit["_id"] for hit in hits}
    finally:
        index.close()


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_bulk_items_answered_429_then_400_are_attributed_by_id(kind, request, tmp_path):
    """Some bulk items answered 429 (retried, some twice) and others 400 (rejected for good),
    over the sample corpus. The client yields retried items after the others, so outcomes
    paired with documents by position put the errors on the wrong documents. The proxy's
    rejection reasons name their documents: each dead letter must carry its own error."""
    throttled = {"doc-002": [429], "doc-009": [429, 429], "doc-017": [429], "doc-030": [429]}
    rejected = {"doc-005": [400], "doc-021": [400], "doc-038": [400]}
    settings = settings_for(kind, request, tmp_path)
    all_ids = set(read_output_ids_of_sample_corpus())
    with FaultProxy(settings.url, item_faults={**throttled, **rejected}) as proxy:
        through_proxy = IndexSettings(kind, url=proxy.url, index=settings.index)
        summary = run(job_for(through_proxy, str(tmp_path / "out")))
    assert sorted(proxy.injected) == sorted(
        (doc_id, status) for doc_id, statuses in {**throttled, **rejected}.items() for status in statuses)
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (41, 38, 3)
    letters = read_dead_letters(str(tmp_path / "out"))
    assert {letter["record"]["id"] for letter in letters} == set(rejected)
    for letter in letters:
        assert letter["stage"] == "index"
        assert "(status 400)" in letter["error"]
        assert f"[{letter['record']['id']}]" in letter["error"]  # its own error, not a neighbour's
    assert indexed_ids(settings) == all_ids - set(rejected)


def read_output_ids_of_sample_corpus() -> list[str]:
    with open(JobConfig().input[0], encoding="utf-8") as corpus:
        return [json.loads(line)["id"] for line in corpus if line.strip()]


def body(text: str, **fields) -> dict:
    return {"text": text, "embedding": {"word": 1.0}, "is_truncated": False, **fields}


@contextmanager
def index_through_proxy(upstream: IndexSettings, item_faults: dict[str, list[int]]):
    """The index of ``upstream`` reached through a ``FaultProxy`` that injects ``item_faults``,
    created with the default spec and a short retry backoff; closed afterwards."""
    with FaultProxy(upstream.url, item_faults=item_faults) as proxy:
        index = open_index(IndexSettings(upstream.kind, url=proxy.url, index=upstream.index))
        index.initial_backoff = 0.01
        try:
            index.ensure_index(IndexSpec("text", "embedding"))
            yield index, proxy
        finally:
            index.close()


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_document_id_repeated_in_one_bulk_last_write_wins_both_accounted_for(kind, request, tmp_path):
    """One buffer holding an id twice, its first version answered 429 once: the retried
    first version must not overwrite the second, each occurrence gets its own outcome (the
    rejected second version of "c" does not make the first one a dead letter), and the
    index keeps the last version that was accepted."""
    upstream = settings_for(kind, request, tmp_path)
    with index_through_proxy(upstream, {"a": [429]}) as (index, proxy):
        write_by_id(index, [("seed", body("seed", year=1))])  # maps "year" as a number
        documents = [("a", body("first a", year=1)), ("b", body("b", year=2)), ("c", body("first c", year=3)),
                     ("a", body("second a", year=4)), ("c", body("second c", year="not a number"))]
        outcomes = write_by_id(index, documents)
        assert [o.doc_id for o in outcomes] == ["a", "b", "c", "a", "c"]
        assert [o.error is None for o in outcomes] == [True, True, True, True, False]
        assert "status 400" in outcomes[4].error and "year" in outcomes[4].error
        index.count()  # refresh
        stored = {doc_id: index._client.get(index=upstream.index, id=doc_id)["_source"]["text"]
                  for doc_id in ("a", "c")}
    assert proxy.injected == [("a", 429)]
    assert stored == {"a": "second a", "c": "first c"}


@pytest.mark.parametrize("kind, scheme", [("elasticsearch", "ApiKey"), ("opensearch", "ApiKey")])
def test_api_key_reaches_the_cluster_for_both_engines(kind, scheme, request, tmp_path):
    """``api_key`` authenticates with ``Authorization: ApiKey <key>`` on both engines
    (OpenSearch has API keys since 3.7); OpenSearch used to drop it silently and send no
    credentials at all. The proxy records what reaches the real server."""
    upstream = settings_for(kind, request, tmp_path)
    with FaultProxy(upstream.url) as proxy:
        index = open_index(IndexSettings(kind, url=proxy.url, index=upstream.index, api_key="sekrit-key"))
        try:
            index.ensure_index(IndexSpec("text", "embedding"))
        finally:
            index.close()
    assert proxy.authorizations and set(proxy.authorizations) == {f"{scheme} sekrit-key"}


def test_bulk_item_429_that_never_clears_raises_instead_of_dead_lettering(elasticsearch_url):
    """A shard that stays overloaded is a transient fault: after the retries the bulk write
    raises (the runner retries the bundle) instead of dead-lettering good documents."""
    with FaultProxy(elasticsearch_url, item_faults={"busy": [429] * 10}) as proxy:
        index = open_index(IndexSettings("elasticsearch", url=proxy.url, index="never-clears"))
        index.initial_backoff = 0.01
        try:
            index.ensure_index(IndexSpec("text", "embedding"))
            with pytest.raises(TransientBulkError, match="after 5 retries"):
                write_by_id(index, [("fine", body("fine")), ("busy", body("busy"))])
        finally:
            index.close()
    assert proxy.injected == [("busy", 429)] * 6  # the first attempt and 5 retries


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_bulk_item_answered_503_once_is_retried_and_written(kind, request, tmp_path):
    """An unavailable shard (503 for one item, once) is transient: the item is sent again and
    written, on both engines. elasticsearch-py's ``streaming_bulk`` retries it itself (its
    ``retry_on_status``); opensearch-py's retries 429 items only, so for OpenSearch we resend
    it. A job must not fail, nor dead-letter the document, over one busy shard."""
    with index_through_proxy(settings_for(kind, request, tmp_path), {"shard-down": [503]}) as (index, proxy):
        outcomes = write_by_id(index, [("fine", body("fine")), ("shard-down", body("shard-down"))])
        assert [(o.doc_id, o.error) for o in outcomes] == [("fine", None), ("shard-down", None)]
        assert index.count() == 2
    assert proxy.injected == [("shard-down", 503)]


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_bulk_item_503_that_never_clears_raises_after_the_retries(kind, request, tmp_path):
    """A shard that stays unavailable: the item is tried once and retried 5 times (by the
    client or by us), then the write raises instead of dead-lettering; the other document
    is written once."""
    with index_through_proxy(settings_for(kind, request, tmp_path), {"down": [503] * 10}) as (index, proxy):
        with pytest.raises(TransientBulkError, match="1 documents with a transient status.*after 5 retries"):
            write_by_id(index, [("fine", body("fine")), ("down", body("down"))])
        assert index.count() == 1
    assert proxy.injected == [("down", 503)] * 6


def test_bulk_answer_missing_an_item_raises(elasticsearch_url):
    """A bulk answer without an item for a document sent: never counted as written."""
    with FaultProxy(elasticsearch_url, item_faults={"lost": [NO_ANSWER]}) as proxy:
        index = open_index(IndexSettings("elasticsearch", url=proxy.url, index="missing-item"))
        try:
            index.ensure_index(IndexSpec("text", "embedding"))
            with pytest.raises(RuntimeError, match="no answer for 1 of 2 documents \\(e.g. 'lost'\\)"):
                write_by_id(index, [("kept", body("kept")), ("lost", body("lost"))])
        finally:
            index.close()


def test_dots_in_token_names_follow_the_documented_rule(elasticsearch_url, tmp_path, endpoints):
    settings = IndexSettings("elasticsearch", url=elasticsearch_url, index="dots")
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "d", "text": "Wait... what. Yes."}'])
    run(job_for(settings, str(tmp_path / "out"), input=[str(source)]))
    index = open_index(settings)
    try:
        stored = index._client.get(index="dots", id="d")["_source"]["embedding"]
    finally:
        index.close()
    assert not any("." in token for token in stored)
    assert DOT_REPLACEMENT in stored  # '.' itself, renamed
    hits = search_index(settings, "...", endpoints.get("my-elser-model"), "embedding", 3)
    assert hits and hits[0].doc_id == "d"


def test_embedded_index_allows_one_writer(tmp_path):
    index = EmbeddedIndex(str(tmp_path / "idx"))
    index.ensure_index(IndexSpec("text", "embedding"))
    holder = index._open()  # another writer holds the directory
    try:
        with pytest.raises(RuntimeError, match="open in another process; it allows one writer"):
            list(index.bulk([("x", {"text": "t", "embedding": {"a": 1.0}})]))
    finally:
        holder.close()
    assert list(index.bulk([("x", {"text": "t", "embedding": {"a": 1.0}})]))[0].error is None
    assert index.count() == 1


def test_two_embedded_index_writers_never_give_one_id_to_two_tokens(tmp_path):
    """Two writers on one directory (two DoFn instances of a job, or a job and a later one),
    both opened before either writes, writing different tokens in turn: every token must
    keep one sparse index of its own, so searches equal the exact dot products."""
    path = str(tmp_path / "idx")
    first, second = EmbeddedIndex(path), EmbeddedIndex(path)
    for writer in (first, second):
        writer.ensure_index(IndexSpec("text", "embedding"))
    vectors = {
        "d1": {"alpha": 1.0, "beta": 2.0},
        "d2": {"gamma": 3.0, "alpha": 0.5},
        "d3": {"delta": 1.5, "gamma": 1.0},
        "d4": {"epsilon": 2.0, "beta": 1.0},
    }
    for writer, (doc_id, vector) in zip([first, second, first, second], vectors.items()):
        assert [o.error for o in writer.bulk([(doc_id, {"text": doc_id, "embedding": vector})])] == [None]

    vocabulary = json.loads((tmp_path / "idx" / "vocabulary.json").read_text())
    assert set(vocabulary) == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert len(set(vocabulary.values())) == len(vocabulary)
    queries = [{token: 1.0} for token in vocabulary] + [{"alpha": 1.0, "gamma": 2.0, "epsilon": 0.5}]
    for searcher in (first, second, EmbeddedIndex(path)):
        for query in queries:
            hits = searcher.search(query, None, 10)
            scores = {doc_id: score for doc_id, score in exact_scores(query, vectors).items() if score > 0}
            assert {hit.doc_id: hit.score for hit in hits} == pytest.approx(scores)


def test_trickle_into_the_one_writer_is_released_by_the_buffering_time():
    """Streaming (TestStream on the DirectRunner, which supports processing time): records
    arriving 3 s apart. The first batch leaves once 5 s have passed since its first record,
    the last one 5 s after it arrived; without the bound nothing would leave before the
    stream ends (and then one batch of 4). The clock stands still at 0 as in Beam's own
    GroupIntoBatches tests: the runner's test clock starts at 0, far behind the wall clock."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.testing.util import assert_that, equal_to

    trickle = (TestStream().advance_watermark_to(0)
               .add_elements(["a", "b"]).advance_processing_time(3)
               .add_elements(["c"]).advance_processing_time(3)
               .add_elements(["d"]).advance_processing_time(6)
               .advance_watermark_to_infinity())
    options = PipelineOptions(["--runner=BundleBasedDirectRunner", "--streaming"])
    with beam.Pipeline(options=options) as pipeline:
        batches = pipeline | trickle | OneWriterBatches(500, MAX_BUFFERING_SECONDS, clock=lambda: 0.0)
        assert_that(batches | beam.Map(len), equal_to([3, 1]))


def test_embedded_sink_batches_have_a_time_bound(tmp_path):
    """The job's embedded-index writer is given the bound (5 s) in the job graph itself, as
    every runner (Dataflow, Flink) receives it."""
    import apache_beam as beam
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create([]) | WriteToSearchIndex(
        IndexSettings("embedded", path=str(tmp_path / "idx")), IndexSpec("text", "embedding"))
    transforms = pipeline.to_runner_api().components.transforms.values()
    (payload,) = [beam_runner_api_pb2.GroupIntoBatchesPayload.FromString(t.spec.payload) for t in transforms
                  if t.spec.urn == common_urns.group_into_batches_components.GROUP_INTO_BATCHES.urn]
    assert (payload.batch_size, payload.max_buffering_duration_millis) == (500, 5000)


def test_secrets_are_never_shown():
    settings = IndexSettings("elasticsearch", url="https://elastic:hunter2@es.example:9243",
                             api_key="sekrit-key", password="hunter2")
    for text in (repr(settings), settings.describe(), repr(JobConfig(api_key="sekrit-key", password="hunter2"))):
        assert "hunter2" not in text and "sekrit-key" not in text


def test_cli_search_table_and_json(tmp_path):
    index_path = str(tmp_path / "idx")
    cli = [sys.executable, "-m", "inference_enrich.pipelines.cli"]
    done = subprocess.run([*cli, "run", "--sink", "embedded", "--index-path", index_path, "--output",
                           str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "embedded index" in done.stdout and "(41 documents)" in done.stdout
    done = subprocess.run([*cli, "search", "whale at sea", "--index-path", index_path, "--top-k", "3"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("3 hits for 'whale at sea'") and "doc-004" in lines[1]
    done = subprocess.run([*cli, "search", "whale", "--sink", "embedded", "--index-path", index_path, "--json"],
                          capture_output=True, text=True)
    hits = json.loads(done.stdout)["hits"]
    assert len(hits) == 10 and hits[0]["source"]["title"] == "Moby-Dick"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_429_and_5xx_answers_are_retried(elasticsearch_url, tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "r1", "text": "retry me"}',
                                                  b'{"id": "r2", "text": "and me"}'])
    with FaultProxy(elasticsearch_url, "_bulk", [429, 503, 502]) as proxy:
        settings = IndexSettings("elasticsearch", url=proxy.url, index="retried")
        summary = run(job_for(settings, str(tmp_path / "out"), input=[str(source)]))
    assert proxy.failed == [429, 503, 502]  # three failed bulk requests, then success
    assert (summary.records_written, summary.dead_letters, summary.index_documents) == (2, 0, 2)


def test_cli_search_uses_the_embedded_index_field_and_names_a_wrong_one(tmp_path):
    """An index written with another --output-field: search finds the field by itself, and a
    wrong field is a one-line error, not a traceback."""
    index_path = str(tmp_path / "idx")
    cli = [sys.executable, "-m", "inference_enrich.pipelines.cli"]
    done = subprocess.run([*cli, "run", "--sink", "embedded", "--index-path", index_path, "--output-field",
                           "splade", "--output", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*cli, "search", "whale at sea", "--index-path", index_path, "--top-k", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "doc-004" in done.stdout
    done = subprocess.run([*cli, "search", "whale", "--index-path", index_path, "--output-field", "embedding"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"enrich: error: the embedded index {index_path} holds its embeddings in 'splade', not 'embedding'"]


@pytest.mark.parametrize("sink", ["embedded", "elasticsearch", "opensearch"])
def test_cli_search_shows_the_text_field_the_index_was_written_with(sink, tmp_path, request):
    """An index written with ``--text-field body``: search shows the hits' text without being
    told the field again (the index records it, as it records the output field)."""
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "w1", "body": "The whale sang at sea."}',
                                                  b'{"id": "w2", "body": "Taxes are due in April."}'])
    where = {"embedded": ["--index-path", str(tmp_path / "idx")],
             "elasticsearch": ["--es-url", request.getfixturevalue("elasticsearch_url"), "--index", "bodies"],
             "opensearch": ["--es-url", request.getfixturevalue("opensearch_url"), "--index", "bodies"]}[sink]
    cli = [sys.executable, "-m", "inference_enrich.pipelines.cli"]
    done = subprocess.run([*cli, "run", "--input", str(source), "--text-field", "body", "--sink", sink, *where,
                           "--output", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*cli, "search", "whale", "--sink", sink, *where, "--top-k", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].endswith("w1                    The whale sang at sea."), done.stdout
