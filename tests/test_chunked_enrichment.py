"""Chunked enrichment (#12): endpoints with ``chunking_settings`` through the real job.

The long text is tests/fixtures/moby_dick_ch1_2.txt (about 3,600 words of Moby-Dick,
public domain), far past SPLADE-tiny's 512 tokens. It is enriched by ``enrich run``'s job
(FnApiRunner, real Parquet) with each strategy, beside short documents and one document that
fails in a single chunk, and every chunk's weights are checked against the textbook SPLADE
computation on ``text[start:end]`` alone (conftest.textbook_sparse).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import yaml

from inference_enrich.inference import EndpointConfigError, load_endpoints
from inference_enrich.inference.api import perform_inference
from inference_enrich.inference.batching import EmbeddedBatch
from inference_enrich.inference.chunked import ChunkedOutcome, embed_chunked
from inference_enrich.inference.chunking import chunk, count_words, parse_chunking_settings
from inference_enrich.transforms.enrich import Enrich
from inference_enrich.transforms.write_parquet import WriteEnrichedParquet
from inference_enrich.pipelines.config import JobConfig

from conftest import SEED_TEXT
from pipeline_helpers import read_dead_letters, read_output, run, write_lines
from test_runtimes import assert_sparse_close

NOVEL = (Path(__file__).parent / "fixtures" / "moby_dick_ch1_2.txt").read_text(encoding="utf-8")

CHUNKING = {
    "sentence": {"strategy": "sentence", "max_chunk_size": 120, "sentence_overlap": 1},
    "word": {"strategy": "word", "max_chunk_size": 100, "overlap": 30},
    "recursive": {"strategy": "recursive", "max_chunk_size": 80, "separator_group": "plaintext"},
}
SHORT_TEXTS = {"seed": SEED_TEXT, "whale": "The whale surfaced near the ship."}
# A lone UTF-16 surrogate (half an emoji) in the middle of the novel: the tokenizer rejects
# the one chunk holding it, so the whole document must become exactly one dead letter.
BROKEN_NOVEL_LINE = json.dumps(
    {"id": "broken", "text": NOVEL[:9000] + " \ud83d " + NOVEL[9000:]}, ensure_ascii=True
).encode()


def write_endpoints(path: Path) -> Path:
    endpoints = {
        f"chunked-{name}": {
            "task_type": "sparse_embedding",
            "service": "transformers",
            "service_settings": {"model_id": "splade-tiny"},
            "chunking_settings": settings,
        }
        for name, settings in CHUNKING.items()
    }
    endpoints["chunked-dense"] = {
        "task_type": "text_embedding",
        "service": "transformers",
        "service_settings": {"model_id": "all-minilm-l6-v2"},
        "chunking_settings": {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 0},
    }
    path.write_text(yaml.safe_dump({"endpoints": endpoints}), encoding="utf-8")
    return path


def write_corpus(path: Path) -> Path:
    lines = [json.dumps({"id": "novel", "text": NOVEL, "chapter": "1-2"}).encode()]
    lines += [json.dumps({"id": key, "text": text}).encode() for key, text in SHORT_TEXTS.items()]
    return write_lines(path, [*lines, BROKEN_NOVEL_LINE])


@pytest.fixture(scope="module")
def endpoints_file(tmp_path_factory):
    return write_endpoints(tmp_path_factory.mktemp("endpoints") / "endpoints.yaml")


@pytest.fixture(scope="module")
def chunked_runs(tmp_path_factory, endpoints_file):
    """Each endpoint's job over the corpus: (summary, rows by id, dead letters, output dir)."""
    corpus = write_corpus(tmp_path_factory.mktemp("corpus") / "docs.jsonl")
    runs = {}
    for name in [*CHUNKING, "dense"]:
        output = str(tmp_path_factory.mktemp(f"out-{name}"))
        job = JobConfig(input=[str(corpus)], output=output, endpoints=str(endpoints_file),
                        inference_id=f"chunked-{name}", max_batch_tokens=2048)
        summary = run(job)
        runs[name] = (summary, read_output(output), read_dead_letters(output), output)
    return runs


@pytest.mark.parametrize("name", CHUNKING)
def test_every_chunk_is_a_span_of_the_text_the_chunker_cut_in_order(name, chunked_runs):
    _, rows, _, _ = chunked_runs[name]
    novel = rows["novel"]
    assert novel["is_truncated"] is False
    spans = [(c["start_offset"], c["end_offset"]) for c in novel["embedding"]]
    expected = [tuple(c) for c in chunk(NOVEL, parse_chunking_settings(CHUNKING[name]))]
    assert spans == expected
    assert len(spans) > 10  # the text really was cut
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)


@pytest.mark.parametrize("name", CHUNKING)
def test_chunks_cover_every_non_space_character_within_the_word_limit(name, chunked_runs):
    _, rows, _, _ = chunked_runs[name]
    chunks = rows["novel"]["embedding"]
    covered = bytearray(len(NOVEL))
    for c in chunks:
        assert 0 <= c["start_offset"] < c["end_offset"] <= len(NOVEL)
        covered[c["start_offset"]:c["end_offset"]] = b"\x01" * (c["end_offset"] - c["start_offset"])
    assert [i for i, char in enumerate(NOVEL) if not covered[i] and not char.isspace()] == []
    limit = CHUNKING[name]["max_chunk_size"]
    counts = [count_words(NOVEL[c["start_offset"]:c["end_offset"]]) for c in chunks]
    assert max(counts) <= limit
    if name == "word":  # windows are full but for the last
        assert set(counts[:-1]) == {limit}


@pytest.mark.parametrize("name", CHUNKING)
def test_each_chunks_weights_equal_the_textbook_computation_on_its_span(name, chunked_runs, textbook_sparse):
    _, rows, _, _ = chunked_runs[name]
    for key, text in [("novel", NOVEL), *SHORT_TEXTS.items()]:
        row = rows[key]
        assert row["text"] == text and row["is_truncated"] is False
        for c in row["embedding"]:
            piece = text[c["start_offset"]:c["end_offset"]]
            assert_sparse_close(dict(c["embedding"]), textbook_sparse(piece), 1e-4)
    assert [(c["start_offset"], c["end_offset"]) for c in rows["seed"]["embedding"]] == [(0, len(SEED_TEXT))]
    assert json.loads(rows["novel"]["passthrough"]) == {"id": "novel", "chapter": "1-2"}


@pytest.mark.parametrize("name", [*CHUNKING, "dense"])
def test_a_document_failing_in_one_chunk_is_dead_lettered_once(name, chunked_runs):
    summary, rows, letters, _ = chunked_runs[name]
    assert set(rows) == {"novel", *SHORT_TEXTS}
    (letter,) = letters
    assert letter["stage"] == "inference" and letter["line"] == 4
    assert letter["error"].startswith("ChunkInferenceError: chunk [")
    assert "TypeError" in letter["error"]  # the tokenizer's reason, kept
    assert json.loads(letter["raw"])["id"] == "broken"
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (4, 3, 1)


def test_parquet_schema_is_a_list_of_chunk_structs(chunked_runs):
    expected = {
        "sentence": pa.map_(pa.string(), pa.float32()),
        "dense": pa.list_(pa.float32()),
    }
    for name, embedding_type in expected.items():
        schema = ds.dataset(chunked_runs[name][3], format="parquet").schema
        assert schema.field("embedding").type == pa.list_(pa.struct([
            pa.field("start_offset", pa.int32()),
            pa.field("end_offset", pa.int32()),
            pa.field("embedding", embedding_type),
        ]))


def test_dense_chunks_equal_the_model_run_on_each_span_alone(chunked_runs, dense_runtime):
    from sentence_transformers import SentenceTransformer

    from inference_enrich.inference.models import resolve_model_path

    _, rows, _, _ = chunked_runs["dense"]
    chunks = rows["novel"]["embedding"]
    assert rows["novel"]["is_truncated"] is False and len(chunks) > 10
    pieces = [NOVEL[c["start_offset"]:c["end_offset"]] for c in chunks]
    reference = SentenceTransformer(resolve_model_path("all-minilm-l6-v2"), device="cpu")
    expected = reference.encode(pieces, batch_size=8, convert_to_numpy=True)
    np.testing.assert_allclose(np.array([c["embedding"] for c in chunks]), expected, atol=1e-5, rtol=0)


def test_chunks_of_many_documents_share_forward_passes(sparse_runtime):
    # 30 documents of several chunks each: the chunks of all of them are one pool, cut into
    # full batches of 12, so no document gets batches of its own.
    sentence = "The sea was calm and the whale rose slowly out of the deep water near us. "
    texts = [(sentence * (20 + i % 5)).strip() for i in range(30)]
    settings = parse_chunking_settings(CHUNKING["sentence"])
    total_chunks = sum(len(chunk(text, settings)) for text in texts)
    events = list(embed_chunked(sparse_runtime, texts, settings, max_batch_tokens=100_000, max_batch_size=12))
    batches = [event for event in events if isinstance(event, EmbeddedBatch)]
    outcomes = [event for event in events if isinstance(event, ChunkedOutcome)]
    assert total_chunks > 2 * len(texts)
    assert len(batches) == -(-total_chunks // 12)
    assert sorted(o.document for o in outcomes) == list(range(30))  # each document once
    for outcome in outcomes:
        assert [(c.start_offset, c.end_offset) for c in outcome.result.chunks] == [
            tuple(c) for c in chunk(texts[outcome.document], settings)]
        assert outcome.chunks == len(outcome.result.chunks)


def test_public_enrich_and_parquet_writer_give_the_chunked_shape(tmp_path, endpoints_file):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that

    endpoint = load_endpoints(endpoints_file).get("chunked-sentence")
    text = NOVEL[:5000]
    expected_spans = [tuple(c) for c in chunk(text, endpoint.chunking_settings)]

    def check(records):
        (record,) = records
        assert [(c["start_offset"], c["end_offset"]) for c in record["tokens"]] == expected_spans
        assert all(isinstance(c["embedding"], dict) and c["embedding"] for c in record["tokens"])
        assert record["is_truncated"] is False and record["lang"] == "en"

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        enriched, _ = (pipeline | beam.Create([{"id": "n", "text": text, "lang": "en"}])
                       | Enrich(endpoint, output_field="tokens"))
        assert_that(enriched, check)
        enriched | WriteEnrichedParquet(str(tmp_path / "out"), "text", "tokens", "sparse_embedding", chunked=True)
    (row,) = read_output(str(tmp_path / "out")).values()
    assert [(c["start_offset"], c["end_offset"]) for c in row["tokens"]] == expected_spans


def test_enrich_infer_answers_the_chunked_shape(endpoints_file):
    endpoint = load_endpoints(endpoints_file).get("chunked-word")
    answer = perform_inference(endpoint, "sparse_embedding", [SEED_TEXT, NOVEL[:3000]])
    first, second = answer["sparse_embedding"]
    assert first["is_truncated"] is False
    assert [(c["start_offset"], c["end_offset"]) for c in first["embedding"]] == [(0, len(SEED_TEXT))]
    assert "port" in first["embedding"][0]["embedding"]
    assert len(second["embedding"]) > 1
    assert [(c["start_offset"], c["end_offset"]) for c in second["embedding"]] == [
        tuple(c) for c in chunk(NOVEL[:3000], endpoint.chunking_settings)]


# --- validation: the endpoints file and its errors ----------------------------------------------


@pytest.mark.parametrize("chunking, message", [
    ({"strategy": "word", "max_chunk_size": 301, "overlap": 10},
     "[chunking_settings] Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0]"),
    ({"strategy": "sentence"}, "[chunking_settings] does not contain the required setting [max_chunk_size]"),
    ({"strategy": "paragraph"}, "Invalid chunkingStrategy paragraph"),
    ({"strategy": "word", "max_chunk_size": 100, "overlap": 60},
     "[chunking_settings] Invalid value [60.0]. [overlap] must be a less than or equal to [50.0]"),
    ("sentence", "[chunking_settings] must be an object, got [sentence]"),
])
def test_bad_chunking_settings_fail_at_load_naming_file_endpoint_and_key(tmp_path, chunking, message):
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"bad": {
        "task_type": "sparse_embedding", "service": "transformers",
        "service_settings": {"model_id": "splade-tiny"}, "chunking_settings": chunking}}}))
    with pytest.raises(EndpointConfigError) as raised:
        load_endpoints(path)
    assert str(raised.value).startswith(f"{path}: endpoint 'bad': chunking_settings: ")
    assert message in str(raised.value)


def test_chunking_settings_round_trip_through_the_body(endpoints_file):
    chunked = [e for e in load_endpoints(endpoints_file) if e.inference_id.startswith("chunked-")]
    assert chunked  # the file's endpoints (the packaged ones beneath it have no chunking)
    for endpoint in chunked:
        body = endpoint.to_body()
        assert body["chunking_settings"]["strategy"] in ("sentence", "word", "recursive")
        assert type(endpoint).from_body(endpoint.inference_id, body) == endpoint
    recursive = load_endpoints(endpoints_file).get("chunked-recursive").to_body()["chunking_settings"]
    assert recursive["separators"] == ["(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"]  # the group, spelled out


def test_without_chunking_settings_nothing_changes(endpoints):
    endpoint = endpoints.get("my-elser-model")
    assert endpoint.chunking_settings is None and "chunking_settings" not in endpoint.to_body()


def test_run_summary_shows_the_first_chunk_of_an_example(chunked_runs, endpoints_file):
    from inference_enrich.pipelines.summary import format_summary

    summary, rows, _, output = chunked_runs["sentence"]
    job = JobConfig(output=output, endpoints=str(endpoints_file), inference_id="chunked-sentence")
    text = format_summary(summary, load_endpoints(endpoints_file).get("chunked-sentence"), job)
    first_row = next(row for row in rows.values() if f'"{row["text"][:20]}' in text)
    first_chunk = first_row["embedding"][0]
    assert (f"{len(first_row['embedding'])} chunks, the first "
            f"[{first_chunk['start_offset']}:{first_chunk['end_offset']}] top tokens: ") in text


def test_endpoint_model_handler_predicts_chunked_embeddings(endpoints_file):
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.testing.util import assert_that

    from inference_enrich.inference.results import ChunkedEmbedding
    from inference_enrich.transforms.model_handler import EndpointModelHandler

    endpoint = load_endpoints(endpoints_file).get("chunked-word")
    texts = [SEED_TEXT, NOVEL[:3000]]

    def check(predictions):
        by_text = {prediction.example: prediction.inference for prediction in predictions}
        assert set(by_text) == set(texts)
        for text, result in by_text.items():
            assert isinstance(result, ChunkedEmbedding) and not result.is_truncated
            assert [(c.start_offset, c.end_offset) for c in result.chunks] == [
                tuple(c) for c in chunk(text, endpoint.chunking_settings)]

    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        assert_that(pipeline | beam.Create(texts) | RunInference(EndpointModelHandler(endpoint)), check)


@pytest.mark.parametrize("sink", ["embedded", "elasticsearch", "opensearch"])
def test_the_job_indexes_chunked_documents_searchable_once_each(sink, request, tmp_path, endpoints_file):
    """The whole job with a chunked endpoint into each index sink: every document is indexed
    once, nothing truncated, and a query whose words occur only deep in the novel (far past
    the model's 512 tokens) finds the novel by a chunk there."""
    from inference_enrich.indexes.query import search_index

    corpus = write_corpus(tmp_path / "docs.jsonl")
    if sink == "embedded":
        location = {"index_path": str(tmp_path / "idx")}
    else:
        url = request.getfixturevalue(f"{sink}_url")
        location = {"es_url": url, "index": f"chunked-{sink}-{tmp_path.name}".lower()}
    job = JobConfig(input=[str(corpus)], output=str(tmp_path / "out"), endpoints=str(endpoints_file),
                    inference_id="chunked-sentence", sink=sink, **location)
    summary = run(job)
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (4, 3, 1)
    assert summary.index_documents == 3
    assert summary.truncated == 0

    endpoint = load_endpoints(str(endpoints_file)).get("chunked-sentence")
    deep = NOVEL.index("Nantucket")  # chapter 2: thousands of words into the text
    assert deep > 10_000 and "nantucket" not in NOVEL[:deep].lower()
    hits = search_index(job.index_settings(), "Nantucket", endpoint, None, 10)
    assert len({hit.doc_id for hit in hits}) == len(hits)  # each document once
    top = hits[0]
    assert top.doc_id == "novel"
    assert top.best_chunk.end_offset > deep
    assert "nantucket" in top.snippet("text").lower()
