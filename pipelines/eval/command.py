"""``enrich eval``: its flags, and the table (or JSON) of every method's scores."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference_enrich.indexes import IndexSettings
from inference_enrich.inference import load_endpoints
from inference_enrich.pipelines.cli_options import add_command, add_setting_flags
from inference_enrich.pipelines.eval.corpus_index import default_cache_dir
from inference_enrich.pipelines.eval.methods import METHODS, MethodResult, evaluate

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


def add_eval_command(commands: argparse._SubParsersAction) -> None:
    command = add_command(commands, "eval",
                          "measure retrieval (nDCG@10, MRR@10, Recall@100) on a BEIR directory",
                          EVAL_HELP, preformatted=True)
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
    add_setting_flags(command, EVAL_CONNECTION_SETTINGS)


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


def format_table(results: dict[str, MethodResult]) -> str:
    lines = [f"{'method':<8} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8} {'queries/s':>10}"]
    for method, result in results.items():
        m = result.metrics
        lines.append(f"{method:<8} {m['ndcg@10']:>8.4f} {m['mrr@10']:>8.4f} {m['recall@100']:>8.4f} "
                     f"{result.queries_per_second:>10.1f}")
    lines.append(f"({next(iter(results.values())).queries} judged queries)")
    return "\n".join(lines)
