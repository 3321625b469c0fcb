"""``enrich search``: embed a query with the endpoint an index was written with and print the
top hits of that index (semantic, bm25 or hybrid, optionally reranked)."""

from __future__ import annotations

import argparse
import json

from inference_enrich.indexes import Hit
from inference_enrich.indexes.query import SEARCH_MODES, search_index, written_text_field
from inference_enrich.indexes.settings import INDEX_SINKS, SINK_ALIASES
from inference_enrich.inference import load_endpoints
from inference_enrich.inference.results import RERANK
from inference_enrich.pipelines.cli_options import add_command, add_setting_flags, given_settings
from inference_enrich.pipelines.config_file import load_job_config

SEARCH_INDEX_SETTINGS = ("es_url", "index", "index_path", "username", "api_key_file", "password_file",
                         "ca_certs", "verify_certs")
"""The sink settings ``enrich search`` takes as flags too (credentials: files or the environment)."""


def add_search_command(commands: argparse._SubParsersAction) -> None:
    search = add_command(
        commands, "search", "search an index written by 'enrich run' with a query embedded by the endpoint",
        "Embed QUERY with the endpoint the index was written with and return the "
        "top hits: for a sparse endpoint by dot product (Elasticsearch sparse_vector query, "
        "OpenSearch rank_feature clauses, the embedded index's sparse search), for a "
        "text_embedding endpoint by kNN (Elasticsearch and OpenSearch knn query, the embedded "
        "index's exact search). Over a chunked index each document comes once, "
        "scored by its best chunk, whose offsets and text are shown. Credentials: "
        "--api-key-file / --password-file, or ES_API_KEY, ES_USERNAME/ES_PASSWORD, "
        "OPENSEARCH_USERNAME/OPENSEARCH_PASSWORD.",
    )
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--sink", choices=(*INDEX_SINKS, *SINK_ALIASES), default=None,
                        help="which index to search (default: embedded if --index-path is given, "
                        "else elasticsearch)")
    add_setting_flags(search, SEARCH_INDEX_SETTINGS)
    search.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=10, metavar="K",
                        help="how many hits to show (default: 10)")
    search.add_argument("--inference-id", "--inference_id", dest="inference_id",
                        default="my-elser-model", metavar="ID", help="the sparse or text_embedding endpoint the index was "
                        "written with (default: my-elser-model)")
    search.add_argument("--output-field", "--output_field", dest="output_field", default=None,
                        metavar="F", help="the indexed embedding field (default: the one the "
                        "index was written with, else embedding)")
    search.add_argument("--text-field", "--text_field", dest="text_field", default=None,
                        metavar="F", help="the indexed text field, shown in hits and searched by bm25 and "
                        "hybrid (default: the one the index was written with, else text)")
    search.add_argument("--mode", choices=SEARCH_MODES, default="semantic",
                        help="semantic (default): the endpoint's embeddings; bm25: the text field "
                        "alone; hybrid: both fused by reciprocal rank fusion (Elasticsearch's rrf "
                        "retriever, rank_constant 60)")
    search.add_argument("--rank-window-size", "--rank_window_size", dest="rank_window_size", type=int,
                        default=None, metavar="N", help="hybrid: hits of each search fused; with "
                        "--rerank-id: hits reranked (default: --top-k)")
    search.add_argument("--rerank-id", "--rerank_id", dest="rerank_id", default=None, metavar="ID",
                        help="a rerank endpoint: rescore the top --rank-window-size hits against QUERY")
    search.add_argument("--endpoints", metavar="FILE", help="endpoints YAML (default: the endpoint store)")
    search.add_argument("--json", action="store_true", help="print JSON")


def run_search(args: argparse.Namespace) -> int:
    given = given_settings(args, SEARCH_INDEX_SETTINGS)
    kind = args.sink or ("embedded" if "index_path" in given else "elasticsearch")
    settings = load_job_config(None, {**given, "sink": kind}).index_settings()
    args.text_field = args.text_field or written_text_field(settings) or "text"
    registry = load_endpoints(args.endpoints)
    reranker = registry.get(args.rerank_id, RERANK) if args.rerank_id else None
    hits = search_index(settings, args.query, registry.get(args.inference_id), args.output_field, args.top_k,
                        args.mode, args.text_field, args.rank_window_size, reranker)
    if args.json:
        print(json.dumps({"query": args.query, "index": settings.describe(),
                          "hits": [_hit_json(hit, args.text_field) for hit in hits]},
                         indent=2, ensure_ascii=False, default=str))
        return 0
    print(f"{len(hits)} hits for {args.query!r} in {settings.describe()}")
    for rank, hit in enumerate(hits, start=1):
        chunk = hit.best_chunk
        if chunk is None:
            text, where = str(hit.source.get(args.text_field, "")), ""
        else:  # the best chunk's text, on one line, after its offsets
            text = " ".join((hit.snippet(args.text_field) or "").split())
            where = f"  [{chunk.start_offset}:{chunk.end_offset}]"
        snippet = text if len(text) <= 80 else text[:77] + "..."
        print(f"{rank:>3}. {hit.score:8.3f}  {hit.doc_id:<20}{where}  {snippet}")
    return 0


def _hit_json(hit: Hit, text_field: str) -> dict:
    """A hit as ``enrich search --json`` prints it; a chunked index's hits add ``best_chunk``
    (its offsets in the text field and its text)."""
    shown = {"id": hit.doc_id, "score": hit.score, "source": hit.source}
    if hit.best_chunk is not None:
        shown["best_chunk"] = {"start_offset": hit.best_chunk.start_offset, "end_offset": hit.best_chunk.end_offset,
                               "text": hit.snippet(text_field)}
    return shown
