"""Hybrid search (#24): BM25 over the indexed text and the semantic search, fused by
reciprocal rank fusion with the semantics of Elasticsearch's ``rrf`` retriever, in all three
indexes. Elasticsearch (noida-db) fuses with its own rrf retriever, which must agree with our
fusion of its two searches; OpenSearch and the embedded index fuse with ours."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_enrich.indexes import Hit, open_index
from inference_enrich.indexes.fusion import reciprocal_rank_fusion
from inference_enrich.indexes.lexical import LexicalIndex
from inference_enrich.indexes.query import Searcher

from pipeline_helpers import run
from test_dense_search import SAMPLE
from test_index_sinks import job_for, settings_for

QUERIES = ["whale at sea", "a rabbit with pink eyes", "liberty and government", "time travel machine"]
CLI = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def hits(*ids: str) -> list[Hit]:
    return [Hit(doc_id, 1.0 / rank, {}) for rank, doc_id in enumerate(ids, start=1)]


def test_rrf_matches_elasticsearch_formula_by_hand():
    fused = reciprocal_rank_fusion([hits("a", "b", "c"), hits("c", "d")], top_k=10, rank_window_size=10)
    expected = {"c": 1 / 63 + 1 / 61, "a": 1 / 61, "b": 1 / 62, "d": 1 / 62}
    assert [hit.doc_id for hit in fused] == ["c", "a", "b", "d"]  # b before d: met first (rank 2, first retriever)
    assert {hit.doc_id: hit.score for hit in fused} == pytest.approx(expected)
    # the window cuts each ranking before fusing: "c" is then only the second ranking's first
    fused = reciprocal_rank_fusion([hits("a", "b", "c"), hits("c", "d")], top_k=2, rank_window_size=2)
    assert [(hit.doc_id, hit.score) for hit in fused] == [("a", pytest.approx(1 / 61)), ("c", pytest.approx(1 / 61))]


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8), max_size=4),
       st.integers(1, 10), st.integers(1, 10), st.integers(1, 100))
def test_rrf_scores_are_the_sum_of_reciprocal_ranks_within_the_window(rankings, top_k, window, constant):
    fused = reciprocal_rank_fusion([hits(*ranking) for ranking in rankings], top_k, window, constant)
    expected: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking[:window], start=1):
            expected[doc_id] = expected.get(doc_id, 0.0) + 1 / (constant + rank)
    assert len(fused) == min(top_k, len(expected))
    assert len({hit.doc_id for hit in fused}) == len(fused)
    assert all(hit.score == pytest.approx(expected[hit.doc_id]) for hit in fused)
    assert [hit.score for hit in fused] == sorted((hit.score for hit in fused), reverse=True)
    best_left_out = max((s for d, s in expected.items() if d not in {h.doc_id for h in fused}), default=0.0)
    assert all(hit.score >= best_left_out - 1e-12 for hit in fused)


@pytest.fixture(scope="module")
def sample_texts():
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {record["id"]: record["text"] for record in records}


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch", "embedded"])
def test_bm25_and_hybrid_in_each_index(kind, request, tmp_path, endpoints, sample_texts):
    settings = settings_for(kind, request, tmp_path)
    assert run(job_for(settings, str(tmp_path / "out"))).index_documents == 41
    lexical = LexicalIndex(list(sample_texts), list(sample_texts.values()))
    with Searcher(settings, endpoints.get("my-elser-model")) as searcher:
        for query in QUERIES:
            bm25 = searcher.search(query, 41, "bm25")
            reference = lexical.search(query, 41)
            assert {hit.doc_id for hit in bm25} == {doc_id for doc_id, _ in reference}  # every matching doc
            assert bm25[0].doc_id == reference[0][0]  # engines' BM25 differ in rounding, not in the best
            assert all(hit.source["text"] == sample_texts[hit.doc_id] and "embedding" not in hit.source
                       for hit in bm25)
            semantic = searcher.search(query, 20, "semantic")
            bm25 = searcher.search(query, 20, "bm25")
            hybrid = searcher.search(query, 5, "hybrid", rank_window_size=20)
            ours = reciprocal_rank_fusion([bm25, semantic], 5, 20)
            assert len(hybrid) == 5
            assert [hit.score for hit in hybrid] == pytest.approx([hit.score for hit in ours])
            for hit, reference_hit in zip(hybrid, ours):  # same documents, up to ties
                assert hit.doc_id == reference_hit.doc_id or hit.score == pytest.approx(reference_hit.score)
            assert all(hit.source["text"] == sample_texts[hit.doc_id] for hit in hybrid)


def test_bm25_finds_nothing_for_unknown_words(tmp_path, endpoints):
    settings = settings_for("embedded", None, tmp_path)
    run(job_for(settings, str(tmp_path / "out")))
    with Searcher(settings, endpoints.get("my-elser-model")) as searcher:
        assert searcher.search("qwxzv", 5, "bm25") == []
        assert len(searcher.search("qwxzv whale", 5, "hybrid")) == 5  # the semantic side still answers


def test_cli_hybrid_search(tmp_path):
    index_path = str(tmp_path / "idx")
    done = subprocess.run([*CLI, "run", "--sink", "embedded", "--index-path", index_path, "--output",
                           str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*CLI, "search", "whale at sea", "--index-path", index_path, "--mode", "hybrid",
                           "--top-k", "3", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["hits"]
    assert found[0]["id"] == "doc-004" and len(found) == 3
    assert found[0]["score"] == pytest.approx(2 / 61)  # first in BM25 and in the sparse search
    index = open_index(settings_for("embedded", None, tmp_path))
    assert index.count() == 41
    for window, error in (("1", "--rank-window-size (1) must be at least --top-k (5)"),
                          ("0", "--rank-window-size must be positive")):
        refused = subprocess.run([*CLI, "search", "whale", "--index-path", index_path, "--mode", "hybrid",
                                  "--top-k", "5", "--rank-window-size", window], capture_output=True, text=True)
        assert refused.returncode == 2 and error in refused.stderr, refused.stderr  # as Elasticsearch's rrf
        assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["elasticsearch", "embedded"])
def test_hybrid_over_a_chunked_index(kind, request, tmp_path, endpoints, sparse_runtime):
    """Documents come once; the embedded index's fused hits keep the semantic side's best
    chunk (Elasticsearch's rrf retriever passes no inner_hits through)."""
    from test_chunked_index import LAST_CHUNK_QUERY, SPEC, enrich_chunked, write

    enriched = enrich_chunked(sparse_runtime, 100)
    settings = settings_for(kind, request, tmp_path)
    write(settings, SPEC, enriched)
    index = open_index(settings)
    assert index.count() == len(enriched)
    index.close()
    with Searcher(settings, endpoints.get("my-elser-model")) as searcher:
        semantic = searcher.search(LAST_CHUNK_QUERY, 6, "semantic")
        bm25 = searcher.search(LAST_CHUNK_QUERY, 6, "bm25")
        hybrid = searcher.search(LAST_CHUNK_QUERY, 3, "hybrid", rank_window_size=6)
    assert len({hit.doc_id for hit in hybrid}) == len(hybrid) == 3
    ours = reciprocal_rank_fusion([bm25, semantic], 3, 6)
    assert [hit.score for hit in hybrid] == pytest.approx([hit.score for hit in ours])
    if kind == "embedded":
        chunks = {hit.doc_id: hit.best_chunk for hit in semantic}
        assert all(hit.best_chunk == chunks[hit.doc_id] for hit in hybrid if hit.doc_id in chunks)
