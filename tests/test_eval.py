"""`enrich eval` (#24) on a tiny BEIR directory built here from the sample corpus: a
known-item task (a run of words from the middle of a document finds that document), run
through the real CLI on the embedded index and on Elasticsearch (noida-db)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference_enrich.indexes import IndexSettings
from inference_enrich.indexes.query import Searcher
from inference_enrich.pipelines.eval.beir import read_beir

from test_dense_search import SAMPLE

CLI = [sys.executable, "-m", "inference_enrich.pipelines.cli", "eval"]
METRICS = {"ndcg@10", "mrr@10", "recall@100"}


def build_beir(directory: Path) -> dict[str, str]:
    """corpus.jsonl (titles on every other document), queries.jsonl (eight words from the
    middle of every third document, plus one query nobody answers) and qrels/test.tsv.
    Returns query id -> the relevant document id."""
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    (directory / "qrels").mkdir(parents=True)
    with (directory / "corpus.jsonl").open("w") as corpus:
        for n, record in enumerate(records):
            doc = {"_id": record["id"], "text": record["text"], **({"title": record["title"]} if n % 2 else {})}
            corpus.write(json.dumps(doc) + "\n")
    answers = {}
    with (directory / "queries.jsonl").open("w") as queries:
        for record in records[::3]:
            words = record["text"].split()
            middle = len(words) // 2
            query_id = f"q-{record['id']}"
            queries.write(json.dumps({"_id": query_id, "text": " ".join(words[middle:middle + 8])}) + "\n")
            answers[query_id] = record["id"]
        queries.write(json.dumps({"_id": "q-none", "text": "zygomorphic quasar bicycles"}) + "\n")
    with (directory / "qrels" / "test.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for query_id, doc_id in answers.items():
            qrels.write(f"{query_id}\t{doc_id}\t1\n")
        qrels.write("q-none\tdoc-999\t1\n")  # judged, but its document is not in the corpus
    return answers


def expected_mrr(rank, beir_dir: Path, answers: dict[str, str]) -> float:
    """MRR@10 by hand from ``rank(query)`` (document ids, best first), over every judged query."""
    beir = read_beir(beir_dir)
    total = 0.0
    for query_id, doc_id in answers.items():
        ranked = rank(beir.queries[query_id])[:10]
        total += 1 / (ranked.index(doc_id) + 1) if doc_id in ranked else 0.0
    return total / (len(answers) + 1)  # q-none counts, as 0


def fused_by_hand(rankings: list[list[str]]) -> list[str]:
    """RRF as Elasticsearch defines it: sum of 1 / (60 + rank); ties keep first-met order."""
    scores: dict[str, float] = {}
    for rank in range(1, 101):
        for ranking in rankings:
            if rank <= len(ranking):
                scores[ranking[rank - 1]] = scores.get(ranking[rank - 1], 0.0) + 1 / (60 + rank)
    return sorted(scores, key=lambda doc_id: -scores[doc_id])


def test_eval_embedded_json_metrics_and_cache(tmp_path, endpoints):
    beir_dir, cache = tmp_path / "beir", tmp_path / "cache"
    answers = build_beir(beir_dir)
    args = [*CLI, str(beir_dir), "--methods", "bm25,sparse,dense,hybrid", "--cache-dir", str(cache)]
    done = subprocess.run([*args, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)  # stdout is the JSON alone
    assert list(results) == ["bm25", "sparse", "dense", "hybrid"]
    for metrics in results.values():
        assert set(metrics) == METRICS and all(0 <= v <= 1 for v in metrics.values())
    assert done.stderr.count("enriching 41 documents") == 2  # the sparse and the dense index
    assert results["bm25"]["mrr@10"] > 0.8  # eight words of the document itself: BM25 finds it

    (sparse_dir,) = [p for p in cache.glob("*/index") if "sparse" in (p / "index.json").read_text()]
    (dense_dir,) = [p for p in cache.glob("*/index") if "text_embedding" in (p / "index.json").read_text()]
    with Searcher(IndexSettings("embedded", path=str(sparse_dir)), endpoints.get("my-elser-model")) as sparse, \
            Searcher(IndexSettings("embedded", path=str(dense_dir)), endpoints.get("my-minilm")) as dense:
        def ids(searcher, query, mode):
            return [hit.doc_id for hit in searcher.search(query, 100, mode)]

        assert results["bm25"]["mrr@10"] == pytest.approx(
            expected_mrr(lambda q: ids(sparse, q, "bm25"), beir_dir, answers))
        assert results["sparse"]["mrr@10"] == pytest.approx(
            expected_mrr(lambda q: ids(sparse, q, "semantic"), beir_dir, answers))
        assert results["dense"]["mrr@10"] == pytest.approx(
            expected_mrr(lambda q: ids(dense, q, "semantic"), beir_dir, answers))
        # with dense among the methods, hybrid fuses all three
        assert results["hybrid"]["mrr@10"] == pytest.approx(expected_mrr(lambda q: fused_by_hand(
            [ids(sparse, q, "bm25"), ids(sparse, q, "semantic"), ids(dense, q, "semantic")]), beir_dir, answers))
    for metrics in results.values():  # one relevant document per query: Recall@100 <= (n - 1) / n
        assert metrics["recall@100"] <= len(answers) / (len(answers) + 1) + 1e-9

    again = subprocess.run(args, capture_output=True, text=True)  # the table, from the cached indexes
    assert again.returncode == 0, again.stderr
    assert "enriching" not in again.stderr and again.stderr.count("reusing") == 2
    lines = again.stdout.splitlines()
    assert lines[0].split() == ["method", "nDCG@10", "MRR@10", "R@100", "queries/s"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:5]}
    assert float(rows["hybrid"][1]) == pytest.approx(results["hybrid"]["mrr@10"], abs=1e-4)
    assert lines[5] == f"({len(answers) + 1} judged queries)"


def test_eval_in_elasticsearch(tmp_path, elasticsearch_url, endpoints):
    beir_dir = tmp_path / "beir"
    answers = build_beir(beir_dir)
    done = subprocess.run([*CLI, str(beir_dir), "--sink", "elasticsearch", "--es-url", elasticsearch_url,
                           "--cache-dir", str(tmp_path / "cache"), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert list(results) == ["bm25", "sparse", "hybrid"]
    assert results["bm25"]["mrr@10"] > 0.8
    assert "into elasticsearch" in done.stderr
    index = done.stderr.split("index '")[1].split("'")[0]  # hybrid: Elasticsearch's own rrf retriever
    settings = IndexSettings("elasticsearch", url=elasticsearch_url, index=index)
    with Searcher(settings, endpoints.get("my-elser-model")) as searcher:
        assert results["hybrid"]["mrr@10"] == pytest.approx(expected_mrr(lambda q: fused_by_hand(
            [[h.doc_id for h in searcher.search(q, 100, mode)] for mode in ("bm25", "semantic")]),
            beir_dir, answers), abs=0.02)


def test_eval_refuses_a_broken_directory_in_one_line(tmp_path):
    beir_dir = tmp_path / "beir"
    build_beir(beir_dir)
    (beir_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq-unknown\tdoc-001\t1\n")
    done = subprocess.run([*CLI, str(beir_dir), "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"enrich: error: {beir_dir / 'qrels' / 'test.tsv'}: 1 judged queries are not in queries.jsonl (e.g. 'q-unknown')"]
    done = subprocess.run([*CLI, str(tmp_path / "nowhere"), "--methods", "bm25,colbert"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown method 'colbert'" in done.stderr


def test_eval_in_opensearch_and_its_missing_knn(tmp_path, opensearch_url):
    """osmem-server: bm25, sparse and hybrid (our fusion) evaluate; dense is refused in one
    line with the server's reason (it has no k-NN plugin)."""
    beir_dir = tmp_path / "beir"
    build_beir(beir_dir)
    args = [*CLI, str(beir_dir), "--sink", "opensearch", "--es-url", opensearch_url, "--cache-dir", str(tmp_path / "c")]
    done = subprocess.run([*args, "--methods", "bm25,hybrid", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bm25"]["mrr@10"] > 0.8
    done = subprocess.run([*args, "--methods", "dense"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("refused the search: [knn] query is not supported by osmem")
    assert "WARNING" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("header", [True, False])
def test_qrels_without_a_header_keep_their_first_judgement_and_a_bom_is_read_past(tmp_path, header):
    """BEIR's qrels start with a ``query-id corpus-id score`` header, but hand-made ones often
    do not: a first line whose score is a number is a judgement, never skipped silently. A
    corpus or queries file starting with a UTF-8 byte-order mark (Windows editors write one)
    reads as without it, as ``enrich run`` reads its inputs."""
    beir_dir = tmp_path / "beir"
    answers = build_beir(beir_dir)
    qrels = beir_dir / "qrels" / "test.tsv"
    lines = qrels.read_text().splitlines(keepends=True)
    qrels.write_text("".join(lines if header else lines[1:]))
    for name in ("corpus.jsonl", "queries.jsonl"):
        path = beir_dir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    beir = read_beir(beir_dir)
    assert {query: set(docs) for query, docs in beir.qrels.items()} == {
        **{query: {doc} for query, doc in answers.items()}, "q-none": {"doc-999"}}
    assert len(beir.corpus) == len(SAMPLE.read_text(encoding="utf-8").strip().splitlines())
