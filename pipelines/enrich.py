"""``enrich run``: check the job, lock its output, run the enrichment graph (``graph``),
publish its staged output only if it succeeded (``transforms/publishing``; with ``publish:
pipeline`` the pipeline's last step does) and return a ``JobSummary``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from inference_enrich.indexes import IndexSpec, open_index
from inference_enrich.inference import Endpoint
from inference_enrich.inference.api import embedding_dimensions, probe
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.errors import JobFailed
from inference_enrich.pipelines.graph import build_pipeline, resolve_endpoint
from inference_enrich.pipelines.output_guard import (
    DETACHED_LEASE_S, OutputLock, check_save_mode, lock_lease, replaces_output,
)
from inference_enrich.transforms.bundle_files import RunFiles
from inference_enrich.transforms.dead_letter_digest import counts_from_counters, describe_dead_letters
from inference_enrich.transforms.kafka import PartitionRange, commit_end_offsets, plan_partitions
from inference_enrich.transforms.metrics import METRICS_NAMESPACE
from inference_enrich.transforms.publishing.accounting import dead_letter_problem, unaccounted_records
from inference_enrich.transforms.publishing.publish import (
    UnpublishedFiles, discard_staging, finish_streaming, new_run_id, publish_output,
)
from inference_enrich.transforms.runner_support import (
    NO_BUNDLE_FINALIZATION_RUNNERS, NO_METRICS_RUNNERS, options_runner,
)

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSummary:
    """What a run did, from its Beam metrics."""

    records_read: int
    records_written: int
    dead_letters: int
    tokens: int
    batches: int
    truncated: int
    seconds: float
    output: str
    tokens_renamed: int = 0
    index_documents: int | None = None  # documents the index holds after the run
    files_cut_short: int = 0  # files read only up to a point; the rest is one 'read' dead letter
    dead_letter_digest: str = ""  # the most common reason (and, for a missing text field, a hint)
    characters: int = 0  # of the texts a remote endpoint enriched (local endpoints count tokens)

    @property
    def docs_per_second(self) -> float:
        return self.records_written / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def run_job(job: JobConfig, options: PipelineOptions) -> JobSummary:
    """Run the enrichment job to completion, publish its output and summarise it.

    Output rules: a batch run publishes everything or nothing, after the pipeline has
    succeeded; from a files source it replaces the earlier output, from Kafka it adds to it
    (each run reads newer messages). A streaming run publishes each bundle's files when the
    runner commits the bundle, adding to the output. With ``publish: pipeline`` the batch
    pipeline has published (and committed the Kafka offsets) itself when it is DONE; the
    accounting check still runs here, but can only report, not hold back, the output.
    """
    refuse_unfit_runner(job, options)
    check_save_mode(job)
    endpoint = resolve_endpoint(job)
    probe(endpoint)  # a remote endpoint's wrong URL or key fails here, before any work
    if job.sink != "parquet":  # fail fast (bad URL, credentials, mapping) before any work
        spec = IndexSpec(job.text_field, job.output_field, endpoint.task_type,
                         embedding_dimensions(endpoint),
                         chunked=endpoint.chunking_settings is not None)
        index = open_index(job.index_settings())
        try:
            index.ensure_index(spec)
        finally:
            index.close()
    run_files = RunFiles(job.output, new_run_id(), streaming=job.streaming)
    runner = options.view_as(StandardOptions).runner
    lease = lock_lease(job, runner)
    lock = OutputLock(job.output, run_files.run_id, lease).acquire()
    detached = False
    try:
        return _run_locked(job, options, endpoint, run_files)
    except JobFailed as error:
        # Only the launcher's wait failed, maybe: the job may run on and publish, and its own
        # publish step releases the lock (else the detached lease ends it).
        detached = error.published is None and lease == DETACHED_LEASE_S
        raise
    finally:
        if detached:
            lock.abandon()
        else:
            lock.release()


def _run_locked(job: JobConfig, options: PipelineOptions, endpoint: Endpoint,
                run_files: RunFiles) -> JobSummary:
    """``run_job`` once the run holds its output's lock."""
    started = time.monotonic()
    partitions: list[PartitionRange] = []
    if job.source == "kafka" and job.kafka_reader == "python":
        partitions = plan_partitions(job.kafka_settings())
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, job, endpoint, run_files, partitions)
    publishes_itself = job.publish == "pipeline" and not job.streaming
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    except Exception as error:
        raise _failed(run_files, publishes_itself, failure_reason(error)) from error
    if state != PipelineState.DONE:  # e.g. cancelled, or failed without raising
        raise _failed(run_files, publishes_itself, f"the pipeline ended in state {state}, not DONE"
                      + (": no Kafka offsets were committed" if partitions and not publishes_itself else ""))
    counters = _counters(result)
    digest = describe_dead_letters(counts_from_counters(counters), job.text_field, job.id_field)
    if run_files.streaming:
        try:
            finish_streaming(run_files)
        except UnpublishedFiles as error:
            raise JobFailed(str(error)) from error
    elif not publishes_itself:  # a pipeline that publishes checked its exact counts first
        missing = unaccounted_records(counters) or dead_letter_problem(
            counters.get("records_read", 0), counters.get("dead_letters_written", 0),
            job.max_dead_letter_ratio, digest)
        if missing:
            discard_staging(run_files)
            raise JobFailed(missing + _what_was_not_published(job)
                            + (" and no Kafka offsets were committed" if partitions else ""))
        publish_output(run_files, replace=replaces_output(job))
        if partitions:  # only now: a failed run must be re-readable
            commit_end_offsets(job.kafka_settings(), partitions)
    index_documents = None
    if job.sink != "parquet":  # makes the writes searchable now (a refresh) and counts them
        index = open_index(job.index_settings())
        try:
            index_documents = index.count()
        finally:
            index.close()
    return JobSummary(
        records_read=counters.get("records_read", 0),
        records_written=counters.get("records_written", 0),
        dead_letters=counters.get("dead_letters_written", 0),
        tokens=counters.get("tokens", 0),
        batches=counters.get("batches", 0),
        truncated=counters.get("truncated", 0),
        seconds=time.monotonic() - started,
        output=job.output if job.sink == "parquet" else job.index_settings().describe(),
        tokens_renamed=counters.get("tokens_renamed", 0),
        index_documents=index_documents,
        files_cut_short=counters.get("files_cut_short", 0),
        dead_letter_digest=digest,
        characters=counters.get("characters", 0),
    )


def refuse_unfit_runner(job: JobConfig, options: PipelineOptions) -> None:
    """``enrich run`` checks and summarises a run from Beam's metrics: a runner without them
    (the Dask runners) is refused before any work, in one line; so is a streaming run on a
    runner that never finalizes bundles (its files would never be published)."""
    runner = options_runner(options)
    if job.streaming and runner in NO_BUNDLE_FINALIZATION_RUNNERS:
        raise ValueError(f"enrich run --streaming cannot use {runner}: it never calls bundle "
                         "finalization, which publishes a streaming run's files and commits its "
                         "Kafka offsets; use FnApiRunner or Dataflow")
    if runner in NO_METRICS_RUNNERS:
        raise ValueError(f"enrich run cannot use {runner}: it reports no metrics, which the run's "
                         "accounting check and summary need; compose the public transforms in a "
                         "pipeline of your own instead (README, \"Runners\")")


def _what_was_not_published(job: JobConfig) -> str:
    """For a failed run's message: an index sink has written its documents during the run
    (a re-run rewrites them by id); only the files (dead letters) were held back."""
    if job.sink == "parquet":
        return "; nothing was published"
    return (f"; its dead letters were not published (the documents already written to "
            f"{job.index_settings().describe()} stay there; a re-run rewrites them by id)")


def _failed(run_files: RunFiles, publishes_itself: bool, reason: str) -> JobFailed:
    """The error for a run that did not end DONE, after removing what it staged. A pipeline
    that publishes itself owns its staging: what failed may be only the launcher's wait for
    a job that runs on, so its staging is left (the next successful run removes it)."""
    if publishes_itself:
        return JobFailed(reason, published=None)
    discard_staging(run_files)
    return JobFailed(reason)


def failure_reason(error: Exception) -> str:
    """The error that failed the pipeline, in one line. In-process runners re-raise the
    worker's exception; the others wrap its whole traceback in a RuntimeError, whose last line
    is that exception (module path dropped)."""
    text = str(error).strip()
    if "Traceback (most recent call last)" not in text:
        return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
    last = text.splitlines()[-1].strip()
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", last)


def _counters(result) -> dict[str, int]:
    totals: dict[str, int] = {}
    for counter in result.metrics().query()["counters"]:
        if counter.key.metric.namespace == METRICS_NAMESPACE:
            name = counter.key.metric.name
            value = counter.committed if counter.committed is not None else counter.attempted
            totals[name] = totals.get(name, 0) + (value or 0)
    return totals
