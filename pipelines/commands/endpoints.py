"""``enrich endpoints``: the endpoints every command sees (the store over the packaged ones),
secrets masked."""

from __future__ import annotations

import argparse
import json

from inference_enrich.inference import load_endpoints
from inference_enrich.inference.secrets import masked
from inference_enrich.pipelines.cli_options import add_command


def add_endpoints_command(commands: argparse._SubParsersAction) -> None:
    endpoints = add_command(commands, "endpoints", "list the configured inference endpoints")
    endpoints.add_argument("--endpoints", metavar="FILE", help="endpoints YAML (default: the endpoint store)")
    endpoints.add_argument("--json", action="store_true", help="print JSON")


def run_endpoints(args: argparse.Namespace) -> int:
    registry = load_endpoints(args.endpoints)
    rows = [{"inference_id": e.inference_id, **masked("endpoint", e.to_body())} for e in registry]
    if args.json:
        print(json.dumps({"endpoints": rows}, indent=2))
        return 0
    print(f"# {registry.source}")
    width = max(len(r["inference_id"]) for r in rows)
    for row in rows:
        settings = ", ".join(f"{k}={v}" for k, v in {**row["service_settings"], **row["task_settings"]}.items())
        print(f"{row['inference_id']:<{width}}  {row['task_type']:<16}  {row['service']:<12}  {settings}")
    return 0
