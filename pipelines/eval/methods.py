"""The retrieval methods ``enrich eval`` compares (bm25, sparse, dense, hybrid), each run over
every judged query and scored with ir-measures' nDCG@10, RR@10 and R@100."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inference_enrich.indexes import Hit, IndexSettings
from inference_enrich.indexes.fusion import reciprocal_rank_fusion
from inference_enrich.indexes.query import Searcher
from inference_enrich.inference import Endpoint
from inference_enrich.pipelines.eval.beir import Beir, read_beir
from inference_enrich.pipelines.eval.corpus_index import enriched_index

METHODS = ("bm25", "sparse", "dense", "hybrid")
DEPTH = 100  # hits per query: Recall@100 needs them, and hybrid fuses this window
METRICS = {"ndcg@10": "nDCG@10", "mrr@10": "RR@10", "recall@100": "R@100"}
"""Our names -> ir-measures' names."""


@dataclass(frozen=True)
class MethodResult:
    metrics: dict[str, float]  # ``METRICS`` names -> mean over the judged queries
    queries_per_second: float
    queries: int


class Searches(Protocol):
    """What ``run_method`` asks: a ``Searcher``, or ``ThreeWayHybrid`` over two of them."""

    def search(self, query: str, top_k: int, mode: str, rank_window_size: int | None = None) -> list[Hit]: ...


def run_method(method: str, searcher: Searches, beir: Beir) -> tuple[dict[str, dict[str, float]], float]:
    """Every judged query's top ``DEPTH`` (as rank-derived scores, so the metrics see exactly
    our order) and the queries per second."""
    mode = {"bm25": "bm25", "hybrid": "hybrid"}.get(method, "semantic")
    searcher.search(next(iter(beir.queries.values())), 1, mode)  # load the model outside the clock
    started = time.perf_counter()
    run: dict[str, dict[str, float]] = {}
    for query_id, text in beir.queries.items():
        hits = searcher.search(text, DEPTH, mode, rank_window_size=DEPTH)
        run[query_id] = {hit.doc_id: float(DEPTH - rank) for rank, hit in enumerate(hits)}
    return run, len(beir.queries) / (time.perf_counter() - started)


def score_run(beir: Beir, run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over every judged query (ir-measures; a query with no hits: 0)."""
    import ir_measures

    measures = {name: ir_measures.parse_measure(spec) for name, spec in METRICS.items()}
    by_measure = {measure: name for name, measure in measures.items()}
    totals = dict.fromkeys(measures, 0.0)
    for metric in ir_measures.iter_calc(list(measures.values()), beir.qrels, run):
        totals[by_measure[metric.measure]] += metric.value
    return {name: total / len(beir.qrels) for name, total in totals.items()}


def evaluate(directory: str | Path, methods: list[str], sparse_endpoint: Endpoint, dense_endpoint: Endpoint | None,
             base: IndexSettings, cache_dir: Path, endpoints_file: str | None = None,
             log=print) -> dict[str, MethodResult]:
    """Enrich (or reuse) the corpus, run each method, score it."""
    beir = read_beir(directory)
    indexes: dict[str, IndexSettings] = {}
    if set(methods) & {"bm25", "sparse", "hybrid"}:
        indexes["sparse"] = enriched_index(beir, sparse_endpoint, base, cache_dir, endpoints_file, log)
    if "dense" in methods:
        if dense_endpoint is None:
            raise ValueError("--methods dense needs --dense-inference-id")
        indexes["dense"] = enriched_index(beir, dense_endpoint, base, cache_dir, endpoints_file, log)
    results = {}
    for method in methods:
        if method == "hybrid" and "dense" in indexes and dense_endpoint is not None:
            with Searcher(indexes["sparse"], sparse_endpoint) as sparse, \
                    Searcher(indexes["dense"], dense_endpoint) as dense:
                run, rate = run_method(method, ThreeWayHybrid(sparse, dense), beir)
        else:
            settings, endpoint = ((indexes["dense"], dense_endpoint) if method == "dense"
                                  else (indexes["sparse"], sparse_endpoint))
            assert endpoint is not None, "--methods dense without --dense-inference-id was refused above"
            with Searcher(settings, endpoint) as searcher:
                run, rate = run_method(method, searcher, beir)
        results[method] = MethodResult(score_run(beir, run), rate, len(beir.qrels))
    return results


class ThreeWayHybrid:
    """``hybrid`` when ``dense`` is evaluated too: BM25, the sparse and the dense search, each
    its first ``rank_window_size`` hits, fused by RRF (as an Elasticsearch ``rrf`` retriever
    with three retrievers; the two embeddings live in two indexes, so the fusion is ours)."""

    def __init__(self, sparse: Searcher, dense: Searcher) -> None:
        self._sparse, self._dense = sparse, dense

    def search(self, query: str, top_k: int, mode: str, rank_window_size: int | None = None) -> list[Hit]:
        window = max(rank_window_size or top_k, top_k)
        rankings = [self._sparse.search(query, window, "bm25"), self._sparse.search(query, window, "semantic"),
                    self._dense.search(query, window, "semantic")]
        return reciprocal_rank_fusion(rankings, top_k, window)
