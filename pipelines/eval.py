"""``enrich eval DIR``: measure retrieval on a BEIR directory with our own enrichment.

    DIR/corpus.jsonl     {"_id", "title"?, "text"} per line
    DIR/queries.jsonl    {"_id", "text"} per line
    DIR/qrels/test.tsv   a header line, then query-id <TAB> corpus-id <TAB> score

The corpus is enriched by the real job (``run_job``) into one index per endpoint (the
sparse one, and the dense one when ``dense`` is asked for), each document's text being its
title and text; the index is kept and reused by the next eval of the same corpus with the
same endpoint (the embedded index under ``--cache-dir``, Elasticsearch/OpenSearch as index
``enrich-eval-<key>``). Each method then answers every judged query with its top 100:

    bm25     the index's BM25 over the text (the engine's own; bm25s in the embedded index)
    sparse   the sparse endpoint's search
    dense    the dense endpoint's kNN search
    hybrid   bm25 and sparse fused by reciprocal rank fusion (rank_constant 60, window 100);
             with dense among the methods, bm25, sparse and dense fused

Metrics are ir-measures' (trec_eval's) nDCG@10, RR@10 (MRR@10) and R@100, averaged over every
judged query (a query a method finds nothing for scores 0), and queries per second.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from inference_enrich.indexes import Hit, IndexSettings, open_index
from inference_enrich.indexes.fusion import reciprocal_rank_fusion
from inference_enrich.indexes.query import Searcher
from inference_enrich.inference import Endpoint, load_endpoints

METHODS = ("bm25", "sparse", "dense", "hybrid")
EVAL_HELP = """\
Enrich DIR/corpus.jsonl ({"_id", "title"?, "text"}) with the endpoints (the real job; the
index is kept under --cache-dir, or as index enrich-eval-<key> in Elasticsearch/OpenSearch,
and reused by the next eval of the same corpus and endpoint), answer every query of
DIR/qrels/test.tsv (header, then query-id corpus-id score; texts in DIR/queries.jsonl) with
each method's top 100, and print nDCG@10, MRR@10, Recall@100 (ir-measures) and queries/s.

methods:
  bm25     BM25 over the indexed text (the engine's own; bm25s in the embedded index)
  sparse   the sparse endpoint's search (--inference-id)
  dense    the text_embedding endpoint's kNN search (--dense-inference-id)
  hybrid   bm25 and sparse fused by reciprocal rank fusion (rank_constant 60, window 100);
           with dense among the methods, bm25, sparse and dense fused"""
EVAL_CONNECTION_SETTINGS = {"es_url": "url", "username": "username", "api_key_file": "api_key_file",
                            "password_file": "password_file", "ca_certs": "ca_certs", "verify_certs": "verify_certs"}
"""The job settings (flags) of the cluster connection -> their IndexSettings names; the index
itself is eval's own (see ``enriched_index``)."""
DEPTH = 100  # hits per query: Recall@100 needs them, and hybrid fuses this window
METRICS = {"ndcg@10": "nDCG@10", "mrr@10": "RR@10", "recall@100": "R@100"}
"""Our names -> ir-measures' names."""


@dataclass(frozen=True)
class Beir:
    """A BEIR directory read whole: documents (id -> title and text joined), the judged
    queries (id -> text) and their judgements (query id -> document id -> grade)."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_digest: str


def read_beir(directory: str | Path, split: str = "test") -> Beir:
    """Read and check a BEIR directory; a malformed line is a ``ValueError`` naming its file
    and line, a missing file a ``FileNotFoundError``."""
    directory = Path(directory)
    corpus_file = directory / "corpus.jsonl"
    corpus, digest = {}, hashlib.sha256()
    for where, record in _json_lines(corpus_file):
        digest.update(json.dumps(record, sort_keys=True).encode())
        text = record.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'text' must be a string")
        title = record.get("title") or ""
        corpus[_id(record, where)] = f"{title}\n{text}" if title else text
    queries = {_id(record, where): str(record.get("text", "")) for where, record in _json_lines(directory / "queries.jsonl")}
    qrels_file = directory / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with _opened(qrels_file) as lines:
        for number, line in enumerate(lines, start=1):
            if number == 1 or not line.strip():
                continue  # the header
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise ValueError(f"{qrels_file}:{number}: expected query-id, corpus-id, score separated by tabs")
            try:
                grade = int(float(fields[2]))
            except ValueError:
                raise ValueError(f"{qrels_file}:{number}: score '{fields[2]}' is not a number") from None
            qrels.setdefault(fields[0], {})[fields[1]] = grade
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        raise ValueError(f"{qrels_file}: {len(unknown)} judged queries are not in queries.jsonl (e.g. '{unknown[0]}')")
    if not qrels:
        raise ValueError(f"{qrels_file}: no judgements")
    return Beir(corpus, {q: queries[q] for q in qrels}, qrels, digest.hexdigest())


def _opened(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a BEIR directory has corpus.jsonl, queries.jsonl, qrels/)")
    return path.open(encoding="utf-8")


def _json_lines(path: Path) -> Iterator[tuple[str, dict]]:
    with _opened(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", record


def _id(record: dict, where: str) -> str:
    if record.get("_id") in (None, ""):
        raise ValueError(f"{where}: missing '_id'")
    return str(record["_id"])


def default_cache_dir() -> Path:
    """Where enriched corpora are kept between evals: $XDG_CACHE_HOME/inference-enrich/eval."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inference-enrich" / "eval"


def enriched_index(beir: Beir, endpoint: Endpoint, base: IndexSettings, cache_dir: Path,
                   endpoints_file: str | None, log=print) -> IndexSettings:
    """The index holding ``beir``'s corpus enriched by ``endpoint``: reused when an earlier
    eval built it completely (same corpus, same endpoint, same cluster), else built now by
    the real job. Nothing is published unless every document was indexed."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from inference_enrich.pipelines.config import JobConfig
    from inference_enrich.pipelines.enrich import run_job

    key = hashlib.sha256(f"{beir.corpus_digest} {endpoint.fingerprint()} {base.kind} {base.url}".encode()).hexdigest()[:16]
    work = cache_dir / key
    settings = dataclasses.replace(base, index=f"enrich-eval-{key}", path=str(work / "index"))
    if _holds(settings, len(beir.corpus)):
        log(f"enrich eval: reusing {settings.describe()} ({len(beir.corpus)} documents, {endpoint.inference_id})")
        return settings
    work.mkdir(parents=True, exist_ok=True)
    corpus_file = work / "corpus.jsonl"
    with corpus_file.open("w", encoding="utf-8") as out:
        for doc_id, text in beir.corpus.items():
            out.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    job = JobConfig(input=[str(corpus_file)], format="jsonl", inference_id=endpoint.inference_id,
                    endpoints=endpoints_file, sink=settings.kind, es_url=settings.url, index=settings.index,
                    index_path=settings.path, output=str(work / "run"), username=settings.username,
                    api_key_file=settings.api_key_file, password_file=settings.password_file,
                    ca_certs=settings.ca_certs, verify_certs=settings.verify_certs)
    log(f"enrich eval: enriching {len(beir.corpus)} documents with {endpoint.inference_id} into {settings.describe()}")
    summary = run_job(job, PipelineOptions(["--runner=FnApiRunner"]))
    if summary.dead_letters or summary.index_documents != len(beir.corpus):
        raise ValueError(f"enriching the corpus left {summary.dead_letters} dead letters and "
                         f"{summary.index_documents} of {len(beir.corpus)} documents in {settings.describe()} "
                         f"(see {work / 'run'}/_dead_letter)")
    log(f"enrich eval: enriched in {summary.seconds:.0f} s ({summary.docs_per_second:.0f} docs/s)")
    return settings


def _holds(settings: IndexSettings, documents: int) -> bool:
    """Whether the index exists and holds exactly ``documents`` documents."""
    if settings.kind == "embedded" and not (Path(settings.path or "") / "index.json").is_file():
        return False
    index = open_index(settings)
    try:
        return index.count() == documents
    except ValueError:  # no such index
        return False
    finally:
        index.close()


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


def format_table(results: dict[str, MethodResult]) -> str:
    lines = [f"{'method':<8} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8} {'queries/s':>10}"]
    for method, result in results.items():
        m = result.metrics
        lines.append(f"{method:<8} {m['ndcg@10']:>8.4f} {m['mrr@10']:>8.4f} {m['recall@100']:>8.4f} "
                     f"{result.queries_per_second:>10.1f}")
    lines.append(f"({next(iter(results.values())).queries} judged queries)")
    return "\n".join(lines)


def add_eval_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``eval`` subcommand (cli.py adds the index connection flags)."""
    command = commands.add_parser(
        "eval",
        help="measure retrieval (nDCG@10, MRR@10, Recall@100) on a BEIR directory",
        description=EVAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    command.add_argument("directory", metavar="DIR", help="a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    command.add_argument("--methods", default="bm25,sparse,hybrid", metavar="M,...",
                         help=f"any of {','.join(METHODS)} (default: bm25,sparse,hybrid)")
    command.add_argument("--inference-id", "--inference_id", dest="inference_id", default="my-elser-model",
                         metavar="ID", help="the sparse endpoint (sparse, hybrid; default: my-elser-model)")
    command.add_argument("--dense-inference-id", "--dense_inference_id", dest="dense_inference_id",
                         default="my-minilm", metavar="ID", help="the text_embedding endpoint (dense; default: my-minilm)")
    command.add_argument("--sink", choices=("embedded", "elasticsearch", "opensearch"), default="embedded",
                         help="where the corpus is indexed and searched (default: embedded)")
    command.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None, metavar="DIR",
                         help="where enriched corpora are kept between evals (default: $XDG_CACHE_HOME/"
                         "inference-enrich/eval, else ~/.cache/inference-enrich/eval)")
    command.add_argument("--endpoints", metavar="FILE", help="endpoints YAML")
    command.add_argument("--json", action="store_true",
                         help='print only {"<method>": {"ndcg@10", "mrr@10", "recall@100"}, ...}')
    return command


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"--methods: unknown method '{(unknown or [text])[0]}' (known: {', '.join(METHODS)})")
    return list(dict.fromkeys(methods))


def run_eval(args: argparse.Namespace) -> int:
    """``enrich eval``: the table (progress on stderr), or the JSON alone."""
    base = IndexSettings(args.sink, **{EVAL_CONNECTION_SETTINGS[name]: getattr(args, name)
                                       for name in EVAL_CONNECTION_SETTINGS if hasattr(args, name)})
    methods = parse_methods(args.methods)
    registry = load_endpoints(args.endpoints)
    sparse = registry.get(args.inference_id)
    dense = registry.get(args.dense_inference_id) if "dense" in methods else None
    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    log = (lambda message: print(message, file=sys.stderr))
    results = evaluate(args.directory, methods, sparse, dense, base, cache_dir, args.endpoints, log)
    if args.json:
        print(json.dumps({method: result.metrics for method, result in results.items()}, indent=2))
    else:
        print(format_table(results))
    return 0

