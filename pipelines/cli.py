"""The ``enrich`` command: run the job, call an endpoint once, list endpoints.

    enrich run [--config FILE] [--input URL] ... [Beam pipeline options]
    enrich infer [sparse_embedding] my-elser-model "The sky above the port ..."
    enrich endpoints
    enrich serve [--host 127.0.0.1] [--port 9200] [--endpoints FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
import types
from typing import Iterable, Literal, NoReturn, Sequence, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from inference_enrich import __version__
from inference_enrich.inference import InferenceEnrichError, load_endpoints, perform_inference
from inference_enrich.inference.results import RERANK, TASK_TYPES
from inference_enrich.indexes import Hit
from inference_enrich.indexes.base import IndexUnreachable
from inference_enrich.transforms.kafka import LIBRDKAFKA_LOGGER, KafkaUnreachable
from inference_enrich.inference.secrets import masked
from inference_enrich.indexes.settings import INDEX_SINKS, SINK_ALIASES
from inference_enrich.pipelines.process_exit import run_and_exit
from inference_enrich.pipelines.config import (
    SECTIONS,
    SETTINGS,
    JobConfig,
    flag,
    load_job_config,
)
from inference_enrich.indexes.query import SEARCH_MODES, search_index, written_text_field
from inference_enrich.pipelines.beam_noise import silence_beam_noise
from inference_enrich.pipelines.errors import JobFailed
from inference_enrich.pipelines.placeholders import LOCATION_SETTINGS, check_placeholders
from inference_enrich.pipelines.eval import EVAL_CONNECTION_SETTINGS, add_eval_command, run_eval
from inference_enrich.server.cli import add_serve_command, run_serve

DEFAULT_RUNNER = "FnApiRunner"
EXIT_RUN_FAILED = 1  # nothing published; the previous output is untouched
EXIT_USAGE = 2  # bad flags, config or endpoint
EXIT_FILES_CUT_SHORT = 3  # finished, but some file could not be read past a point
EXIT_READER_GONE = 128 + 13  # stdout's reader went away (`| head`): as a shell reports SIGPIPE

BEAM_OPTIONS_HELP = """\
Any other option is passed to Apache Beam as a pipeline option, for example:
  --runner=RUNNER            FnApiRunner (default here: in-process), DirectRunner,
                             DataflowRunner, FlinkRunner, PortableRunner, ...
  --direct_num_workers=N     worker count for the local runners
  --direct_running_mode=M    in_memory | multi_threading | multi_processing
  --job_endpoint=HOST:PORT   with --runner=PortableRunner
  --dry_run                  with --runner=DataflowRunner: build the Dataflow job and
                             print what would be submitted, without submitting it
See Beam's PipelineOptions for the full list.

Output: OUTPUT/part-*.parquet (read with pyarrow.dataset.dataset(OUTPUT)) and
dead letters as JSON Lines in OUTPUT/_dead_letter/, published only when the run
succeeds (then OUTPUT/_SUCCESS); a run from files replaces what earlier enrich runs
published there, one from Kafka adds to it (--mode); other files are never removed.
Exit status: 0 done; 1 the run failed (or dead-lettered more than
--max-dead-letter-ratio) and published nothing; 2 bad usage, config or output directory;
3 done, but some input file could not be read past a point (see the summary);
141 the reader of its output went away (| head)."""
SEARCH_INDEX_SETTINGS = ("es_url", "index", "index_path", "username", "api_key_file", "password_file",
                         "ca_certs", "verify_certs")
"""The sink settings ``enrich search`` takes as flags too (credentials: files or the environment)."""


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The subparser of ``command`` (``run`` reports its own usage errors)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


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
    run.add_argument("--config", metavar="FILE",
                     help="job config YAML (see configs/local.yaml); flags given here win over it")
    add_job_settings(run)
    run.add_argument("--quiet", action="store_true", help="print only the summary")

    search = commands.add_parser(
        "search",
        help="search an index written by 'enrich run' with a query embedded by the endpoint",
        description="Embed QUERY with the endpoint the index was written with and return the "
        "top hits: for a sparse endpoint by dot product (Elasticsearch sparse_vector query, "
        "OpenSearch rank_feature clauses, the embedded index's sparse search), for a "
        "text_embedding endpoint by kNN (Elasticsearch and OpenSearch knn query, the embedded "
        "index's exact search). Over a chunked index each document comes once, "
        "scored by its best chunk, whose offsets and text are shown. Credentials: "
        "--api-key-file / --password-file, or ES_API_KEY, ES_USERNAME/ES_PASSWORD, "
        "OPENSEARCH_USERNAME/OPENSEARCH_PASSWORD.",
        allow_abbrev=False,
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

    infer = commands.add_parser(
        "infer",
        help="call an endpoint once and print Elasticsearch's JSON response",
        description="Like POST _inference/[TASK_TYPE/]INFERENCE_ID {\"input\": [TEXT, ...]}.",
        allow_abbrev=False,
    )
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

    endpoints = commands.add_parser("endpoints", help="list the configured inference endpoints",
                                    allow_abbrev=False)
    endpoints.add_argument("--endpoints", metavar="FILE", help="endpoints YAML (default: the endpoint store)")
    endpoints.add_argument("--json", action="store_true", help="print JSON")
    add_serve_command(commands)
    add_setting_flags(add_eval_command(commands), EVAL_CONNECTION_SETTINGS)
    return parser


def add_job_settings(run: argparse.ArgumentParser) -> None:
    """One flag per JobConfig setting, grouped by config-file section; secrets get none."""
    for section in SECTIONS:
        names = [name for name, setting in SETTINGS.items() if setting.section == section]
        renamed = [f"{flag(name)} is {SETTINGS[name].key}" for name in names if SETTINGS[name].key]
        file_only = [name for name in names if SETTINGS[name].secret]
        about = (f"Config file section '{section}:', keys as the flags with underscores"
                 + (f" ({'; '.join(renamed)})" if renamed else "") + "."
                 + (f" Config file only (secrets stay off command lines): {', '.join(file_only)}."
                    if file_only else ""))
        group = run.add_argument_group(f"{section} settings", textwrap.fill(about, 78))
        add_setting_flags(group, [name for name in names if name not in file_only])


def add_setting_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      names: Iterable[str]) -> None:
    """``--kebab-name`` (and ``--snake_name``) for each JobConfig field in ``names``: help from
    its description and default, the value's type or choices from its annotation. A flag not
    given leaves no attribute (``SUPPRESS``), so the config file's value stands."""
    for name in names:
        field = JobConfig.model_fields[name]
        value_type = _without_none(field.annotation)
        options = [flag(name)] + ([f"--{name}"] if "_" in name and value_type is not bool else [])
        kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": _flag_help(field)}
        if value_type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction  # --x and --no-x
        else:
            if get_origin(value_type) is list:
                kwargs["action"] = "append"
                value_type = get_args(value_type)[0]
            if get_origin(value_type) is Literal:
                kwargs["metavar"] = "{" + ",".join(get_args(value_type)) + "}"
            else:
                kwargs["metavar"] = SETTINGS[name].metavar or name.upper()
            if value_type in (int, float):
                kwargs["type"] = value_type
        parser.add_argument(*options, **kwargs)


def _without_none(annotation: object) -> object:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    return annotation


def _flag_help(field: FieldInfo) -> str:
    text = field.description or ""
    if field.default is not None and field.default_factory is None and "(default" not in text:
        shown = str(field.default).lower() if isinstance(field.default, bool) else field.default
        text += f" (default: {shown})"
    return text.replace("%", "%%")


def main(argv: Sequence[str] | None = None) -> int:
    _flush_each_line()
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    try:
        if args.command == "run":
            return _run(args, beam_args, _command_parser(parser, "run"))
        if args.command == "infer":
            return _infer(args)
        if args.command == "search":
            return _search(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "eval":
            _configure_logging(quiet=True)
            return run_eval(args)
        return _endpoints(args)
    except BrokenPipeError:  # `enrich ... | head`: the reader has what it wanted
        return _reader_went_away()
    except JobFailed as error:
        outcome = {False: "its output files were not published",
                   None: "the pipeline publishes its output itself (OUTPUT/_SUCCESS names the "
                         "last run that did)"}[error.published]
        print(f"enrich: error: the run failed, {outcome}: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except (IndexUnreachable, KafkaUnreachable) as error:  # before (run) or instead of (search) any work
        print(f"enrich: error: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except (InferenceEnrichError, FileNotFoundError, ValueError) as error:
        print(f"enrich: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace, beam_args: list[str], run_parser: argparse.ArgumentParser) -> int:
    _configure_logging(quiet=args.quiet)
    job = load_job_config(args.config, given_settings(args))
    if not any(arg.split("=")[0] == "--runner" for arg in beam_args):
        beam_args = [f"--runner={DEFAULT_RUNNER}", *beam_args]
    if job.streaming:
        beam_args.append("--streaming")
    # Beam's --dry_run wants a value; `--dry_run` alone reads as the user means it.
    beam_args = ["--dry_run=True" if arg == "--dry_run" else arg for arg in beam_args]
    check_placeholders(beam_args, {name: getattr(job, name) for name in LOCATION_SETTINGS})
    endpoint = load_endpoints(job.endpoints).get(job.inference_id)
    if not args.quiet:  # at once: the imports below take seconds
        origin = (f"kafka {job.kafka_bootstrap} {','.join(job.kafka_topic)}" if job.source == "kafka"
                  else f"{len(job.input)} input(s)")
        print(
            f"enrich: {origin} -> {job.sink} with {endpoint.inference_id} "
            f"({endpoint.task_type}, {endpoint.model_id})",
            file=sys.stderr,
        )
    from apache_beam.options.pipeline_options import PipelineOptions

    from inference_enrich.pipelines.dry_run import format_translation, is_dry_run, translate_job
    from inference_enrich.pipelines.enrich import run_job
    from inference_enrich.pipelines.flag_check import unknown_argument_problem
    from inference_enrich.pipelines.summary import format_summary

    problem = unknown_argument_problem(beam_args, run_parser._option_string_actions)
    if problem:  # what is not ours must be a Beam pipeline option
        run_parser.error(problem)
    options = PipelineOptions(beam_args)
    if is_dry_run(options):
        print(format_translation(translate_job(job, options)))
        return 0
    summary = run_job(job, options)
    print(format_summary(summary, endpoint, job))
    return EXIT_FILES_CUT_SHORT if summary.files_cut_short else 0


def given_settings(args: argparse.Namespace, names: Iterable[str] = SETTINGS) -> dict:
    """The JobConfig settings among ``names`` given as flags (flags not given leave no attribute)."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def _infer(args: argparse.Namespace) -> int:
    if args.task_type is not None and args.task_type not in TASK_TYPES:
        # No task type: argparse gave the inference id to TASK_TYPE (task types are a fixed set).
        args.task_type, args.inference_id, args.text = None, args.task_type, [args.inference_id, *args.text]
    elif args.task_type is None and args.inference_id in TASK_TYPES:
        raise ValueError(f"the following arguments are required after {args.inference_id}: INFERENCE_ID TEXT")
    endpoint = load_endpoints(args.endpoints).get(args.inference_id)
    print(json.dumps(perform_inference(endpoint, args.task_type or endpoint.task_type, args.text, args.query,
                                       args.top_n, args.return_documents), indent=2))
    return 0


def _search(args: argparse.Namespace) -> int:
    _configure_logging(quiet=True)
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


def _endpoints(args: argparse.Namespace) -> int:
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


def _flush_each_line() -> None:
    """Write stdout line by line even into a pipe, so a reader that went away (``| head``) is
    noticed by the print that meets it, inside ``main``, and not by the flush at exit, which
    could only print a traceback."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def _reader_went_away() -> int:
    """The reader of stdout closed it (``| head``): send the rest of the output to /dev/null,
    so the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_GONE


CLIENT_LOGGERS = ("elastic_transport", "opensearch")
"""The index clients log every retry as a warning with its traceback; what matters reaches the
user anyway, as one line (an unreachable cluster) or as the run's failure."""


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("inference_enrich").setLevel(logging.WARNING if quiet else logging.INFO)
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # librdkafka logs every failed connection attempt; the run's error says what matters.
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.CRITICAL)
    silence_beam_noise()


def entry() -> NoReturn:
    """The ``enrich`` console script: ``main``, then an exit that no native library thread can
    turn into an abort (see ``process_exit``)."""
    run_and_exit(main)


if __name__ == "__main__":
    entry()
