"""Dense (kNN) search (#24): an index written with a text_embedding endpoint answers
`enrich search` with its nearest documents in all three indexes, chunked and unchunked, and
a query embedded by the other kind of endpoint is a one-line error, never 0 hits.

Indexes are written by the real job (sample corpus, all-MiniLM-L6-v2) and, for chunks, by
WriteToSearchIndex with the Python Language Reference topics of test_chunked_index; the
reference ranking is the exact cosine similarity of the packaged model's vectors.
osmem-server (the OpenSearch API here) has no k-NN plugin: it refuses the knn query, and
the search says so in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference_enrich.indexes import IndexSpec, open_index
from inference_enrich.indexes.query import search_index
from inference_enrich.inference import infer_texts
from inference_enrich.inference.results import TEXT_EMBEDDING

from pipeline_helpers import run
from test_chunked_index import enrich_chunked, write
from test_index_sinks import job_for, settings_for

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "sample_corpus.jsonl"
QUERIES = ["whale at sea", "a rabbit with pink eyes", "liberty and government"]
CLI = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))  # the model's vectors are unit length


@pytest.fixture(scope="module")
def sample_vectors(dense_runtime):
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    results = infer_texts(dense_runtime, [record["text"] for record in records])
    return {record["id"]: result.embedding for record, result in zip(records, results)}


def assert_nearest(hits, query_vector: list[float], vectors: dict[str, list[float]], top_k: int) -> None:
    """Rank by rank, the hit's exact cosine equals the exact ranking's at that rank (to
    float32 precision: near-ties may swap, nothing else may)."""
    scores = {doc_id: cosine(query_vector, vector) for doc_id, vector in vectors.items()}
    expected = sorted(scores, key=scores.get, reverse=True)[:top_k]
    assert len(hits) == top_k
    assert len({hit.doc_id for hit in hits}) == top_k
    for hit, reference in zip(hits, expected):
        assert scores[hit.doc_id] == pytest.approx(scores[reference], abs=1e-4)


@pytest.mark.parametrize("kind", ["elasticsearch", "embedded"])
def test_dense_index_answers_knn_search(kind, request, tmp_path, endpoints, dense_runtime, sample_vectors):
    settings = settings_for(kind, request, tmp_path)
    summary = run(job_for(settings, str(tmp_path / "out"), inference_id="my-minilm"))
    assert summary.index_documents == 41
    for query in QUERIES:
        hits = search_index(settings, query, endpoints.get("my-minilm"), None, 5)
        (query_vector,) = [r.embedding for r in infer_texts(dense_runtime, [query])]
        assert_nearest(hits, query_vector, sample_vectors, 5)
        assert all("embedding" not in hit.source and hit.source["text"] for hit in hits)
    hits = search_index(settings, "whale at sea", endpoints.get("my-minilm"), None, 1)
    assert hits[0].source["title"] == "Moby-Dick"


@pytest.mark.parametrize("kind", ["elasticsearch", "embedded"])
def test_dense_chunked_index_ranks_documents_by_their_best_chunk(kind, request, tmp_path, endpoints, dense_runtime):
    enriched = enrich_chunked(dense_runtime, 100)
    settings = settings_for(kind, request, tmp_path)
    write(settings, IndexSpec("text", "embedding", TEXT_EMBEDDING, dims=384, chunked=True), enriched)
    index = open_index(settings)
    assert index.count() == len(enriched)  # and makes the writes visible to searches
    index.close()
    query = "the illegal problem a clause may cause"
    (query_vector,) = [r.embedding for r in infer_texts(dense_runtime, [query])]
    best = {  # document -> (best chunk's cosine, its position)
        doc.document.id: max(((cosine(query_vector, c.embedding), n) for n, c in enumerate(doc.result.chunks)))
        for doc in enriched}
    chunks = {doc.document.id: doc.result.chunks for doc in enriched}
    hits = search_index(settings, query, endpoints.get("my-minilm"), None, 3)
    expected = sorted(best, key=lambda doc_id: best[doc_id][0], reverse=True)[:3]
    assert len(hits) == 3 and len({hit.doc_id for hit in hits}) == 3
    for hit, reference in zip(hits, expected):
        assert best[hit.doc_id][0] == pytest.approx(best[reference][0], abs=1e-4)
        chunk = chunks[hit.doc_id][best[hit.doc_id][1]]
        assert (hit.best_chunk.start_offset, hit.best_chunk.end_offset) == (chunk.start_offset, chunk.end_offset)
        assert hit.snippet("text") == hit.source["text"][chunk.start_offset:chunk.end_offset]


def test_opensearch_without_knn_refuses_in_one_line(request, tmp_path, endpoints):
    """osmem-server maps knn_vector but has no knn query: the search fails with its reason,
    instead of faking kNN with another query."""
    settings = settings_for("opensearch", request, tmp_path)
    run(job_for(settings, str(tmp_path / "out"), inference_id="my-minilm"))
    with pytest.raises(ValueError, match=r"refused the search: \[knn\] query is not supported") as error:
        search_index(settings, "whale at sea", endpoints.get("my-minilm"), None, 5)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch", "embedded"])
def test_task_type_mismatch_is_a_one_line_error(kind, request, tmp_path, endpoints):
    """A sparse index searched with a dense endpoint, and a dense one with a sparse endpoint."""
    sparse_settings = settings_for(kind, request, tmp_path / "sparse")
    dense_settings = settings_for(kind, request, tmp_path / "dense")
    for settings, endpoint in ((sparse_settings, "my-elser-model"), (dense_settings, "my-minilm")):
        run(job_for(settings, str(tmp_path / endpoint / "out"), inference_id=endpoint))
    with pytest.raises(ValueError, match="holds sparse_embedding embeddings, and the query was embedded by a "
                                         "text_embedding endpoint"):
        search_index(sparse_settings, "whale", endpoints.get("my-minilm"), None, 3)
    with pytest.raises(ValueError, match="holds text_embedding embeddings, and the query was embedded by a "
                                         "sparse_embedding endpoint"):
        search_index(dense_settings, "whale", endpoints.get("my-elser-model"), None, 3)


def test_cli_dense_search_and_mismatch(tmp_path):
    index_path = str(tmp_path / "idx")
    done = subprocess.run([*CLI, "run", "--sink", "embedded", "--index-path", index_path, "--inference-id",
                           "my-minilm", "--output", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*CLI, "search", "whale at sea", "--index-path", index_path, "--inference-id",
                           "my-minilm", "--top-k", "3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("3 hits for 'whale at sea'") and "doc-004" in lines[1]  # Moby-Dick
    done = subprocess.run([*CLI, "search", "whale at sea", "--index-path", index_path], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"enrich: error: the embedded index {index_path} holds text_embedding embeddings, and the query was "
        "embedded by a sparse_embedding endpoint: search it with the text_embedding endpoint the index was "
        "written with"]
