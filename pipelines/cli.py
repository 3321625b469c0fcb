"""The ``enrich`` command: run the job, call an endpoint once, list endpoints.

    enrich run [--config FILE] [--input URL] ... [Beam pipeline options]
    enrich infer sparse_embedding my-elser-model "The sky above the port ..."
    enrich endpoints
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from inference_enrich import __version__
from inference_enrich.inference import InferenceEnrichError, load_endpoints, perform_inference
from inference_enrich.inference.results import TASK_TYPES
from inference_enrich.indexes.settings import INDEX_SINKS, SINK_ALIASES, IndexSettings
from inference_enrich.pipelines.config import SINKS, JobConfig, load_job_config
from inference_enrich.indexes.query import search_index
from inference_enrich.pipelines.enrich import JobFailed, resolve_endpoint, run_job
from inference_enrich.pipelines.summary import format_summary
from inference_enrich.transforms.formats import FORMATS

DEFAULT_RUNNER = "FnApiRunner"
EXIT_RUN_FAILED = 1  # nothing published; the previous output is untouched
EXIT_USAGE = 2  # bad flags, config or endpoint
EXIT_FILES_CUT_SHORT = 3  # published, but some file could not be read past a point

BEAM_OPTIONS_HELP = f"""\
Any other option is passed to Apache Beam as a pipeline option, for example:
  --runner=RUNNER            FnApiRunner (default here: in-process), DirectRunner,
                             DataflowRunner, FlinkRunner, PortableRunner, ...
  --direct_num_workers=N     worker count for the local runners
  --direct_running_mode=M    in_memory | multi_threading | multi_processing
  --job_endpoint=HOST:PORT   with --runner=PortableRunner
See Beam's PipelineOptions for the full list.

Defaults: input = the bundled sample corpus, format = from the file extension,
inference id = my-elser-model, endpoints = the packaged configs/endpoints.yaml,
output = ./{JobConfig.output}.
Output: OUTPUT/part-*.parquet (read with pyarrow.dataset.dataset(OUTPUT)) and
dead letters as JSON Lines in OUTPUT/_dead_letter/, published only when the run
succeeds (then OUTPUT/_SUCCESS); a run from files replaces the previous output.
Exit status: 0 done; 1 the run failed and published nothing; 2 bad usage or config;
3 done, but some input file could not be read past a point (see the summary)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enrich",
        description="Elasticsearch-style inference (sparse and dense embeddings) for whole "
        "corpora, as an Apache Beam job.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="enrich documents from files or Kafka into Parquet or a search index",
        description="Read documents from files or Kafka, call an inference endpoint on their "
        "text in batches, write enriched records to Parquet, Elasticsearch, OpenSearch or an "
        "embedded index, and every record that fails to dead-letter files with its reason.",
        epilog=BEAM_OPTIONS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument("--config", metavar="FILE", help="job config YAML (see configs/local.yaml)")
    run.add_argument("--source", choices=("files", "kafka"), help="where documents come from (default: files)")
    run.add_argument("--kafka-bootstrap", "--kafka_bootstrap", dest="kafka_bootstrap", metavar="HOST:PORT")
    run.add_argument("--kafka-topic", "--kafka_topic", dest="kafka_topic", action="append", metavar="T",
                     help="topic to read; repeat for several")
    run.add_argument("--kafka-group", "--kafka_group", dest="kafka_group", metavar="G",
                     help="consumer group whose offsets are read and committed (default: inference-enrich)")
    run.add_argument("--streaming", action="store_true", default=None,
                     help="read Kafka without end (also sets Beam's --streaming)")
    run.add_argument("--stop-after-records", "--stop_after_records", dest="stop_after_records", type=int,
                     metavar="N", help="streaming: stop after N records")
    run.add_argument("--stop-after-seconds", "--stop_after_seconds", dest="stop_after_seconds", type=float,
                     metavar="T", help="streaming: stop after T seconds")
    run.add_argument(
        "--input",
        action="append",
        metavar="URL_OR_GLOB",
        help="input file, directory or glob; any fsspec URL (file://, memory://, s3://, gs://); "
        "repeat for several",
    )
    run.add_argument("--format", choices=FORMATS, help="input format (default: by extension)")
    run.add_argument("--output", metavar="DIR", help="output directory (any fsspec URL)")
    run.add_argument("--endpoints", metavar="FILE", help="endpoints YAML")
    run.add_argument("--inference-id", "--inference_id", dest="inference_id", metavar="ID")
    run.add_argument("--text-field", "--text_field", dest="text_field", metavar="F",
                     help="record field holding the text (default: text)")
    run.add_argument("--id-field", "--id_field", dest="id_field", metavar="F",
                     help="record field holding the id (default: id; else a hash of the record)")
    run.add_argument("--output-field", "--output_field", dest="output_field", metavar="F",
                     help="column for the inference result (default: embedding)")
    run.add_argument("--max-batch-tokens", "--max_batch_tokens", dest="max_batch_tokens",
                     type=int, metavar="N", help="padded tokens per forward pass (default: 8192)")
    run.add_argument("--max-batch-size", "--max_batch_size", dest="max_batch_size", type=int,
                     metavar="N", help="documents per forward pass (default: 64)")
    run.add_argument("--num-threads", "--num_threads", dest="num_threads", type=int,
                     metavar="N", help="torch threads per worker (default: torch's choice)")
    run.add_argument("--sink", choices=(*SINKS, *SINK_ALIASES),
                     help="where enriched records go (default: parquet, in --output)")
    add_index_arguments(run)
    run.add_argument("--quiet", action="store_true", help="print only the summary")

    search = commands.add_parser(
        "search",
        help="search an index written by 'enrich run' with a query expanded by the endpoint",
        description="Expand QUERY with the sparse endpoint and return the top hits by dot "
        "product: Elasticsearch sparse_vector query, OpenSearch rank_feature clauses, or the "
        "embedded index's sparse search. Credentials: ES_API_KEY, ES_USERNAME/ES_PASSWORD, "
        "OPENSEARCH_USERNAME/OPENSEARCH_PASSWORD.",
        allow_abbrev=False,
    )
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--sink", choices=(*INDEX_SINKS, *SINK_ALIASES), default=None,
                        help="which index to search (default: embedded if --index-path is given, "
                        "else elasticsearch)")
    add_index_arguments(search)
    search.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=10, metavar="K")
    search.add_argument("--inference-id", "--inference_id", dest="inference_id",
                        default="my-elser-model", metavar="ID", help="sparse endpoint (default: my-elser-model)")
    search.add_argument("--output-field", "--output_field", dest="output_field", default=None,
                        metavar="F", help="the indexed embedding field (default: the one the "
                        "embedded index was written with, else embedding)")
    search.add_argument("--text-field", "--text_field", dest="text_field", default="text",
                        metavar="F", help="the indexed text field, shown in hits (default: text)")
    search.add_argument("--endpoints", metavar="FILE", help="endpoints YAML")
    search.add_argument("--json", action="store_true", help="print JSON")

    infer = commands.add_parser(
        "infer",
        help="call an endpoint once and print Elasticsearch's JSON response",
        description="Like POST _inference/TASK_TYPE/INFERENCE_ID {\"input\": [TEXT, ...]}.",
        allow_abbrev=False,
    )
    infer.add_argument("task_type", metavar="TASK_TYPE", help=" | ".join(TASK_TYPES))
    infer.add_argument("inference_id", metavar="INFERENCE_ID")
    infer.add_argument("text", metavar="TEXT", nargs="+")
    infer.add_argument("--endpoints", metavar="FILE", help="endpoints YAML")

    endpoints = commands.add_parser("endpoints", help="list the configured inference endpoints",
                                    allow_abbrev=False)
    endpoints.add_argument("--endpoints", metavar="FILE", help="endpoints YAML")
    endpoints.add_argument("--json", action="store_true", help="print JSON")
    return parser


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--es-url", "--es_url", dest="es_url", metavar="URL",
                        help="Elasticsearch/OpenSearch URL (default: http://127.0.0.1:9200)")
    parser.add_argument("--index", metavar="NAME",
                        help="Elasticsearch/OpenSearch index name (default: enriched)")
    parser.add_argument("--index-path", "--index_path", dest="index_path", metavar="DIR",
                        help="embedded index directory (one writer at a time)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    try:
        if args.command == "run":
            return _run(args, beam_args)
        if args.command == "infer":
            return _infer(args)
        if args.command == "search":
            return _search(args)
        return _endpoints(args)
    except JobFailed as error:
        print(f"enrich: error: the run failed, its output was not published: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except (InferenceEnrichError, FileNotFoundError, ValueError) as error:
        print(f"enrich: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace, beam_args: list[str]) -> int:
    _configure_logging(quiet=args.quiet)
    overrides = {
        key: getattr(args, key)
        for key in ("input", "format", "output", "endpoints", "inference_id", "text_field",
                    "id_field", "output_field", "max_batch_tokens", "max_batch_size",
                    "num_threads", "sink", "es_url", "index", "index_path", "source",
                    "kafka_bootstrap", "kafka_topic", "kafka_group", "streaming",
                    "stop_after_records", "stop_after_seconds")
    }
    job = load_job_config(args.config, overrides)
    if not any(arg.split("=")[0] == "--runner" for arg in beam_args):
        beam_args = [f"--runner={DEFAULT_RUNNER}", *beam_args]
    if job.streaming:
        beam_args.append("--streaming")
    endpoint = resolve_endpoint(job)
    if not args.quiet:
        origin = (f"kafka {job.kafka_bootstrap} {','.join(job.kafka_topic)}" if job.source == "kafka"
                  else f"{len(job.input)} input(s)")
        print(
            f"enrich: {origin} -> {job.sink} with {endpoint.inference_id} "
            f"({endpoint.task_type}, {endpoint.model_id})",
            file=sys.stderr,
        )
    summary = run_job(job, PipelineOptions(beam_args))
    print(format_summary(summary, endpoint, job))
    return EXIT_FILES_CUT_SHORT if summary.files_cut_short else 0


def _infer(args: argparse.Namespace) -> int:
    endpoint = load_endpoints(args.endpoints).get(args.inference_id)
    print(json.dumps(perform_inference(endpoint, args.task_type, args.text), indent=2))
    return 0


def _search(args: argparse.Namespace) -> int:
    kind = args.sink or ("embedded" if args.index_path else "elasticsearch")
    settings = IndexSettings(kind=kind, url=args.es_url, index=args.index or "enriched",
                             path=args.index_path)
    hits = search_index(settings, args.query, load_endpoints(args.endpoints).get(args.inference_id),
                        args.output_field, args.top_k)
    if args.json:
        print(json.dumps({"query": args.query, "index": settings.describe(),
                          "hits": [{"id": h.doc_id, "score": h.score, "source": h.source} for h in hits]},
                         indent=2, ensure_ascii=False, default=str))
        return 0
    print(f"{len(hits)} hits for {args.query!r} in {settings.describe()}")
    for rank, hit in enumerate(hits, start=1):
        text = str(hit.source.get(args.text_field, ""))
        snippet = text if len(text) <= 80 else text[:77] + "..."
        print(f"{rank:>3}. {hit.score:8.3f}  {hit.doc_id:<20}  {snippet}")
    return 0


def _endpoints(args: argparse.Namespace) -> int:
    registry = load_endpoints(args.endpoints)
    rows = [
        {
            "inference_id": e.inference_id,
            "task_type": e.task_type,
            "service": e.service,
            "service_settings": dict(e.service_settings),
            "task_settings": dict(e.task_settings),
        }
        for e in registry
    ]
    if args.json:
        print(json.dumps({"endpoints": rows}, indent=2))
        return 0
    print(f"# {registry.source}")
    width = max(len(r["inference_id"]) for r in rows)
    for row in rows:
        settings = ", ".join(f"{k}={v}" for k, v in {**row["service_settings"], **row["task_settings"]}.items())
        print(f"{row['inference_id']:<{width}}  {row['task_type']:<16}  {row['service']:<12}  {settings}")
    return 0


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("inference_enrich").setLevel(logging.WARNING if quiet else logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
