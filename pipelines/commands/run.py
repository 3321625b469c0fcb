"""``enrich run``: the job from a config file and flags, with the rest of the command line as
Beam pipeline options; Beam and torch are imported only once the job is about to start."""

from __future__ import annotations

import argparse
import sys

from inference_enrich.inference import load_endpoints
from inference_enrich.pipelines.cli_options import add_command, add_job_settings, given_settings
from inference_enrich.pipelines.config_file import load_job_config
from inference_enrich.pipelines.placeholders import LOCATION_SETTINGS, check_placeholders

DEFAULT_RUNNER = "FnApiRunner"
EXIT_FILES_CUT_SHORT = 3  # finished, but some file could not be read past a point

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


def add_run_command(commands: argparse._SubParsersAction) -> None:
    run = add_command(
        commands, "run", "enrich documents from files or Kafka into Parquet or a search index",
        "Read documents from files or Kafka, call an inference endpoint on their "
        "text in batches, write enriched records to Parquet, Elasticsearch, OpenSearch or an "
        "embedded index, and every record that fails to dead-letter files with its reason.",
        epilog=BEAM_OPTIONS_HELP, preformatted=True,
    )
    run.add_argument("--config", metavar="FILE",
                     help="job config YAML (see configs/local.yaml); flags given here win over it")
    add_job_settings(run)
    run.add_argument("--quiet", action="store_true", help="print only the summary")


def launch_job(args: argparse.Namespace, beam_args: list[str], run_parser: argparse.ArgumentParser) -> int:
    """Run the job to its end and print its summary; ``run_parser`` reports an argument that is
    neither ours nor a Beam pipeline option."""
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
