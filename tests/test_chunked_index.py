"""Chunked search indexes (#12): documents enriched chunk by chunk, written by
WriteToSearchIndex on Beam's in-process runner to each sink (noida-db for the Elasticsearch
API, osmem-server for OpenSearch, the embedded index), then searched per document.

The documents are the six help topics of tests/data/python_reference_prose.txt (the Python
Language Reference, see tests/data/README.md), 320 to 1,490 words each, cut into chunks of a
fixed number of words and embedded with the packaged models. The chunking itself is
tests/test_chunking.py's business: here a plain fixed split gives chunks whose offsets are
known. One query's words ("illegal", "problem") occur only in the last chunk of the "try"
topic, past the model's 512-token limit, so they are out of reach of that document's
unchunked embedding.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from inference_enrich.indexes import IndexSettings, IndexSpec, open_index
from inference_enrich.indexes.base import DOT_REPLACEMENT
from inference_enrich.indexes.query import search_index
from inference_enrich.inference import infer_texts
from inference_enrich.inference.results import TEXT_EMBEDDING, ChunkedEmbedding, EmbeddedChunk, SparseEmbedding
from inference_enrich.transforms.documents import Document, EnrichedDocument, enriched_record
from inference_enrich.transforms.write_index import WriteToSearchIndex, index_source

from pipeline_helpers import IN_PROCESS
from test_index_sinks import settings_for

PROSE = (Path(__file__).parent / "data" / "python_reference_prose.txt").read_text(encoding="utf-8")
LAST_CHUNK_QUERY = "illegal problem"  # only in the last chunk of "try"
QUERIES = [LAST_CHUNK_QUERY, "future statement", "context manager", "traceback", "namespace of a module"]
SPEC = IndexSpec("text", "embedding", chunked=True)


def topics(prose: str) -> dict[str, str]:
    """The prose's help topics by id: each starts at a title underlined with '*'."""
    lines = prose.split("\n")
    starts = [i for i in range(len(lines) - 1) if lines[i + 1] and set(lines[i + 1]) == {"*"}]
    bodies = ["\n".join(lines[a:b]).strip() for a, b in zip(starts, [*starts[1:], len(lines)])]
    return {re.sub(r"\W+", "-", body.split("\n")[0].replace("The ", "")).strip("-").lower(): body
            for body in bodies}


DOCUMENTS = topics(PROSE)


def fixed_chunks(text: str, words: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive runs of ``words`` whitespace-separated words."""
    spans = [match.span() for match in re.finditer(r"\S+", text)]
    return [(spans[i][0], spans[min(i + words, len(spans)) - 1][1]) for i in range(0, len(spans), words)]


def enrich_chunked(runtime, words: int) -> list[EnrichedDocument]:
    """Every topic enriched chunk by chunk with ``runtime`` (a real model)."""
    enriched = []
    for doc_id, text in DOCUMENTS.items():
        offsets = fixed_chunks(text, words)
        results = infer_texts(runtime, [text[start:end] for start, end in offsets])
        assert not any(result.is_truncated for result in results)
        chunks = tuple(EmbeddedChunk(start, end, result.embedding) for (start, end), result in zip(offsets, results))
        record = {"id": doc_id, "text": text, "title": text.split("\n")[0]}
        enriched.append(EnrichedDocument(Document(doc_id, text, record), ChunkedEmbedding(chunks)))
    return enriched


def write(settings: IndexSettings, spec: IndexSpec, enriched: list[EnrichedDocument]) -> None:
    """Through WriteToSearchIndex on FnApiRunner, half the documents as EnrichedDocuments and
    half as the enriched dicts ``Enrich`` emits; no document may be rejected."""
    elements = [doc if n % 2 else enriched_record(doc, spec.output_field) for n, doc in enumerate(enriched)]
    with beam.Pipeline(options=PipelineOptions(IN_PROCESS)) as pipeline:
        letters = pipeline | beam.Create(elements) | WriteToSearchIndex(settings, spec)
        assert_that(letters, equal_to([]))


def dot(query: dict[str, float], embedding: dict[str, float]) -> float:
    return sum(weight * embedding.get(token, 0.0) for token, weight in query.items())


def best_chunks(query: dict[str, float], enriched: list[EnrichedDocument]) -> dict[str, tuple[float, EmbeddedChunk]]:
    """The exact reference: each document's best chunk and its score."""
    best = {}
    for doc in enriched:
        scored = [(dot(query, chunk.embedding), chunk) for chunk in doc.result.chunks]
        best[doc.document.id] = max(scored, key=lambda pair: pair[0])
    return best


def assert_ranked_by_best_chunk(hits, query: dict[str, float], enriched, top_k: int, relative: float) -> None:
    """Each document at most once; rank by rank, the hit's score is the exact best-chunk
    score at that rank (within ``relative``: Elasticsearch and OpenSearch keep 9 significant
    bits of a weight, so near-ties may swap); the named chunk is one of the document's
    chunks and scores its best; the snippet is that chunk's text."""
    best = best_chunks(query, enriched)
    chunks_of = {doc.document.id: doc.result.chunks for doc in enriched}
    texts = {doc.document.id: doc.document.text for doc in enriched}
    ids = [hit.doc_id for hit in hits]
    assert len(ids) == len(set(ids)), ids
    matching = [doc_id for doc_id, (score, _) in best.items() if score > 0]
    assert len(hits) == min(top_k, len(matching))
    expected = sorted(matching, key=lambda doc_id: best[doc_id][0], reverse=True)
    for hit, reference in zip(hits, expected):
        top_score = best[hit.doc_id][0]
        assert top_score == pytest.approx(best[reference][0], rel=relative)
        assert hit.score == pytest.approx(top_score, rel=relative)
        (chunk,) = [c for c in chunks_of[hit.doc_id]
                    if (c.start_offset, c.end_offset) == (hit.best_chunk.start_offset, hit.best_chunk.end_offset)]
        assert dot(query, chunk.embedding) == pytest.approx(top_score, rel=relative)
        assert hit.snippet("text") == texts[hit.doc_id][chunk.start_offset:chunk.end_offset]
        assert hit.source["title"] == texts[hit.doc_id].split("\n")[0]
        assert "embedding" not in hit.source


@pytest.fixture(scope="module")
def enriched_100(sparse_runtime):
    return enrich_chunked(sparse_runtime, 100)


@pytest.fixture(scope="module")
def enriched_40(sparse_runtime):
    return enrich_chunked(sparse_runtime, 40)


def test_the_last_chunk_query_is_out_of_reach_unchunked(sparse_runtime, enriched_100):
    """The premise of the search test: "try" is longer than the model's limit, its
    unchunked embedding is truncated and lacks the query's words, its last chunk has them."""
    text = DOCUMENTS["try-statement"]
    (whole,) = infer_texts(sparse_runtime, [text])
    assert whole.is_truncated
    assert not {"illegal", "problem"} & set(whole.embedding)
    (last,) = [doc.result.chunks[-1] for doc in enriched_100 if doc.document.id == "try-statement"]
    assert {"illegal", "problem"} <= set(last.embedding)
    assert [doc_id for doc_id, text in DOCUMENTS.items() if "illegal" in text.lower()] == ["try-statement"]


@pytest.mark.parametrize("kind, relative", [("elasticsearch", 0.01), ("opensearch", 0.01), ("embedded", 1e-5)])
def test_chunked_index_returns_each_document_once_ranked_by_its_best_chunk(
        kind, relative, request, tmp_path, endpoints, sparse_runtime, enriched_40, enriched_100):
    """Written with 40-word chunks, then rewritten with 100-word chunks (fewer per document):
    the index holds each document once, and searches rank by the rewritten chunks only."""
    settings = settings_for(kind, request, tmp_path)
    write(settings, SPEC, enriched_40)
    write(settings, SPEC, enriched_100)
    index = open_index(settings)
    try:
        assert index.count() == len(DOCUMENTS)
    finally:
        index.close()

    endpoint = endpoints.get("my-elser-model")
    for query in QUERIES:
        (expanded,) = infer_texts(sparse_runtime, [query])
        for top_k in (1, 3, 10):
            hits = search_index(settings, query, endpoint, None, top_k)
            assert_ranked_by_best_chunk(hits, expanded.embedding, enriched_100, top_k, relative)
        assert all(word in hits[0].snippet("text").lower() for word in query.split() if len(word) > 2)

    (top, *_) = search_index(settings, LAST_CHUNK_QUERY, endpoint, None, 3)
    (try_doc,) = [doc for doc in enriched_100 if doc.document.id == "try-statement"]
    last = try_doc.result.chunks[-1]
    assert (top.doc_id, top.best_chunk.start_offset, top.best_chunk.end_offset) == (
        "try-statement", last.start_offset, last.end_offset)


def test_embedded_rewrite_removes_chunks_a_document_no_longer_has(tmp_path, enriched_40, enriched_100):
    """One point per chunk: after the rewrite with fewer chunks, exactly the new chunks remain."""
    import qdrant_edge as qe

    settings = IndexSettings("embedded", path=str(tmp_path / "idx"))
    write(settings, SPEC, enriched_40)
    write(settings, SPEC, enriched_100)
    index = open_index(settings)
    shard = index._open()
    try:
        points = shard.count(qe.CountRequest())
    finally:
        shard.close()
    assert points == sum(len(doc.result.chunks) for doc in enriched_100)
    assert points < sum(len(doc.result.chunks) for doc in enriched_40)


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch", "embedded"])
def test_dense_chunks_are_indexed_per_document(kind, request, tmp_path, dense_runtime):
    """text_embedding chunks (all-MiniLM-L6-v2, 384 dimensions) go in as nested dense vectors
    (one point per chunk in the embedded index) and count as one document each."""
    enriched = enrich_chunked(dense_runtime, 100)[:3]
    spec = IndexSpec("text", "embedding", TEXT_EMBEDDING, dims=384, chunked=True)
    settings = settings_for(kind, request, tmp_path)
    write(settings, spec, enriched)
    index = open_index(settings)
    try:
        assert index.count() == 3
        if kind != "embedded":
            mapping = index._field_mapping("embedding")
            assert mapping["type"] == "nested"
            assert mapping["properties"]["embedding"]["type"] == {"elasticsearch": "dense_vector",
                                                                   "opensearch": "knn_vector"}[kind]
            stored = index._client.get(index=settings.index, id=enriched[0].document.id)["_source"]["embedding"]
            assert [(c["start_offset"], c["end_offset"]) for c in stored] == [
                (c.start_offset, c.end_offset) for c in enriched[0].result.chunks]
            assert stored[0]["embedding"] == pytest.approx(enriched[0].result.chunks[0].embedding, abs=1e-6)
    finally:
        index.close()


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_mapping_check_tells_chunked_from_unchunked(kind, request, tmp_path):
    """An index made for one shape refuses the other, naming both."""
    settings = settings_for(kind, request, tmp_path)
    plain = IndexSettings(kind, url=settings.url, index=f"{settings.index}-plain")
    index, plain_index = open_index(settings), open_index(plain)
    try:
        index.ensure_index(SPEC)
        index.ensure_index(SPEC)  # the same shape again: fine
        plain_index.ensure_index(IndexSpec("text", "embedding"))
        sparse_type = {"elasticsearch": "sparse_vector", "opensearch": "rank_features"}[kind]
        with pytest.raises(ValueError, match=f"maps 'embedding' as nested chunks of {sparse_type}, not {sparse_type}"):
            index.ensure_index(IndexSpec("text", "embedding"))
        with pytest.raises(ValueError, match=f"maps 'embedding' as {sparse_type}, not nested chunks of {sparse_type}"):
            plain_index.ensure_index(SPEC)
        with pytest.raises(ValueError, match=f"as nested chunks of {sparse_type}, not nested chunks of "):
            index.ensure_index(IndexSpec("text", "embedding", TEXT_EMBEDDING, dims=384, chunked=True))
    finally:
        index.close()
        plain_index.close()


def test_index_source_applies_the_dot_rule_per_chunk():
    chunks = (EmbeddedChunk(0, 5, {"wait": 1.0, "...": 0.5}), EmbeddedChunk(6, 11, {".": 2.0, "##.": 0.1, "what": 0.3}))
    enriched = EnrichedDocument(Document("d", "Wait. What.", {"id": "d", "text": "Wait. What.", "n": 1}),
                                ChunkedEmbedding(chunks))
    source, renamed = index_source(enriched, SPEC)
    assert renamed == 3
    dots = DOT_REPLACEMENT
    assert source == {"id": "d", "n": 1, "text": "Wait. What.", "is_truncated": False, "embedding": [
        {"start_offset": 0, "end_offset": 5, "embedding": {"wait": 1.0, dots * 3: 0.5}},
        {"start_offset": 6, "end_offset": 11, "embedding": {dots: 2.0, f"##{dots}": 0.1, "what": 0.3}}]}


def test_index_source_refuses_a_result_that_does_not_fit_the_index():
    """A chunked result for an unchunked index (or the reverse) is a configuration error,
    raised, never written in a shape the index was not made for."""
    document = Document("d", "text", {"id": "d", "text": "text"})
    chunked = EnrichedDocument(document, ChunkedEmbedding((EmbeddedChunk(0, 4, {"text": 1.0}),)))
    whole = EnrichedDocument(document, SparseEmbedding({"text": 1.0}, False))
    with pytest.raises(ValueError, match=r"has a ChunkedEmbedding, but the index \(its IndexSpec\) is not chunked"):
        index_source(chunked, IndexSpec("text", "embedding"))
    with pytest.raises(ValueError, match=r"has a SparseEmbedding, but the index \(its IndexSpec\) is chunked"):
        index_source(whole, SPEC)


def test_cli_search_shows_the_best_chunk(tmp_path, enriched_100):
    index_path = str(tmp_path / "idx")
    write(IndexSettings("embedded", path=index_path), SPEC, enriched_100)
    last = next(doc for doc in enriched_100 if doc.document.id == "try-statement").result.chunks[-1]
    cli = [sys.executable, "-m", "inference_enrich.pipelines.cli", "search", LAST_CHUNK_QUERY, "--index-path", index_path]
    done = subprocess.run([*cli, "--top-k", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"2 hits for '{LAST_CHUNK_QUERY}'") and len(lines) == 3
    assert "try-statement" in lines[1] and f"[{last.start_offset}:{last.end_offset}]" in lines[1]
    text = DOCUMENTS["try-statement"]
    assert lines[1].endswith(" ".join(text[last.start_offset:last.end_offset].split())[:77] + "...")

    done = subprocess.run([*cli, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)["hits"]
    assert [hit["id"] for hit in hits][0] == "try-statement" and len({hit["id"] for hit in hits}) == len(hits)
    for hit in hits:
        chunk = hit["best_chunk"]
        assert chunk["text"] == hit["source"]["text"][chunk["start_offset"]:chunk["end_offset"]]
    assert hits[0]["best_chunk"]["start_offset"] == last.start_offset
    assert "illegal" in hits[0]["best_chunk"]["text"]


def test_index_writer_refuses_a_plain_dict_in_one_line(tmp_path):
    """``WriteToSearchIndex`` takes what ``Enrich`` emits; a hand-made dict that merely looks
    like an enriched record is refused with one line naming the writer, not indexed."""
    settings = IndexSettings("embedded", path=str(tmp_path / "index"), index="plain")
    element = {"id": "d", "text": "Wait.", "embedding": {"word": 1.0}, "is_truncated": False}
    with pytest.raises(Exception, match=r"WriteToSearchIndex takes the records Enrich emits \(EnrichedDocument\), got dict"):
        with beam.Pipeline(options=PipelineOptions(IN_PROCESS)) as pipeline:
            _ = pipeline | beam.Create([element]) | WriteToSearchIndex(settings, IndexSpec("text", "embedding"))
