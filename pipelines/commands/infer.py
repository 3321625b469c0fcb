"""``enrich infer``: one call of an endpoint, printed as Elasticsearch's JSON response, like
``POST _inference/[TASK_TYPE/]INFERENCE_ID``."""

from __future__ import annotations

import argparse
import json

from inference_enrich.inference import load_endpoints, perform_inference
from inference_enrich.inference.results import TASK_TYPES
from inference_enrich.pipelines.cli_options import add_command


def add_infer_command(commands: argparse._SubParsersAction) -> None:
    infer = add_command(commands, "infer", "call an endpoint once and print Elasticsearch's JSON response",
                        "Like POST _inference/[TASK_TYPE/]INFERENCE_ID {\"input\": [TEXT, ...]}.")
    infer.add_argument("task_type", metavar="TASK_TYPE", nargs="?",
                       help=f"{' | '.join(TASK_TYPES)}; optional, as in the REST route: the endpoint's "
                       "own by default, and given, it must be the endpoint's")
    infer.add_argument("inference_id", metavar="INFERENCE_ID")
    infer.add_argument("text", metavar="TEXT", nargs="+")
    infer.add_argument("--endpoints", metavar="FILE", help="endpoints YAML (default: the endpoint store)")
    infer.add_argument("--query", default=None, help="rerank: the query the TEXTs are ranked for")
    infer.add_argument("--top-n", "--top_n", dest="top_n", type=int, default=None, metavar="N",
                       help="rerank: keep the N most relevant (default: all)")
    infer.add_argument("--return-documents", "--return_documents", dest="return_documents",
                       action=argparse.BooleanOptionalAction, default=None,
                       help="rerank: answer with each text (default: the endpoint's task_settings, else true)")


def run_infer(args: argparse.Namespace) -> int:
    if args.task_type is not None and args.task_type not in TASK_TYPES:
        # No task type: argparse gave the inference id to TASK_TYPE (task types are a fixed set).
        args.task_type, args.inference_id, args.text = None, args.task_type, [args.inference_id, *args.text]
    elif args.task_type is None and args.inference_id in TASK_TYPES:
        raise ValueError(f"the following arguments are required after {args.inference_id}: INFERENCE_ID TEXT")
    endpoint = load_endpoints(args.endpoints).get(args.inference_id)
    print(json.dumps(perform_inference(endpoint, args.task_type or endpoint.task_type, args.text, args.query,
                                       args.top_n, args.return_documents), indent=2))
    return 0
