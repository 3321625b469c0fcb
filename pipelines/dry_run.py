"""``enrich run --runner DataflowRunner --dry_run``: translate the job without submitting it.

Beam's ``--dry_run`` (``TestOptions``) makes ``DataflowRunner`` build the complete Dataflow job
(the portable pipeline proto, its environments and the job request) and stop before any call
to Google Cloud. That is an offline proof that every part of the graph (splittable DoFns,
state, timers, ``GroupIntoBatches``) translates. A dry run has no side effects and reaches no
service: input patterns are not listed, no output is prepared, no index created, no offset
committed, and a missing or invalid temp location is refused at once (Beam would look for a
default bucket online); only the Kafka source still asks the broker for the offsets it would
read, because those are part of the job it builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions, TestOptions
from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.graph import build_pipeline, resolve_endpoint
from inference_enrich.transforms.publishing.publish import new_run_id
from inference_enrich.transforms.bundle_files import RunFiles
from inference_enrich.transforms.kafka import plan_partitions

DRY_RUN_RUNNERS = ("DataflowRunner",)
"""Runners that honour ``--dry_run``; the others would run the job for real."""


@dataclass(frozen=True)
class TranslatedJob:
    """What would have been submitted."""

    runner: str
    job_name: str
    job_type: str
    transforms: int
    environments: tuple[str, ...]
    splittable_dofns: int


def is_dry_run(options: PipelineOptions) -> bool:
    return bool(options.view_as(TestOptions).dry_run)


def translate_job(job: JobConfig, options: PipelineOptions) -> TranslatedJob:
    """Build ``job`` for the runner in ``options`` and return what it translated to."""
    runner = str(options.view_as(StandardOptions).runner or "")
    if runner.rsplit(".", 1)[-1] not in DRY_RUN_RUNNERS:
        raise ValueError(f"--dry_run translates for {', '.join(DRY_RUN_RUNNERS)} only; "
                         f"the {runner or 'default'} runner would run the job")
    _require_staging_path(options)
    partitions = plan_partitions(job.kafka_settings()) if job.source == "kafka" and job.kafka_reader == "python" else []
    pipeline = beam.Pipeline(options=options)
    # A RunFiles names where files would be staged; nothing is written in a dry run.
    run_files = RunFiles(job.output, new_run_id(), streaming=job.streaming)
    build_pipeline(pipeline, job, resolve_endpoint(job), run_files, partitions, match_inputs=False)
    # In a dry run DataflowRunner returns a plain PipelineResult with the translated job set
    # on it as `job`, an attribute PipelineResult does not declare.
    submitted = pipeline.run().job  # type: ignore[attr-defined]
    proto = submitted.proto_pipeline
    return TranslatedJob(
        runner=runner,
        job_name=submitted.proto.name,
        job_type=submitted.proto.type_.name,
        transforms=len(proto.components.transforms),
        environments=tuple(sorted(
            env.urn + (f" {_container_image(env)}" if _container_image(env) else "")
            for env in proto.components.environments.values())),
        splittable_dofns=sum(map(_is_splittable, proto.components.transforms.values())),
    )


def _require_staging_path(options: PipelineOptions) -> None:
    """Refuse, offline, a dry run with neither a valid ``--temp_location`` nor a valid
    ``--staging_location``: Beam would then look up credentials and a default bucket on Google
    Cloud (minutes of retries offline) before failing, and a dry run contacts no service."""
    validator = PipelineOptionsValidator(options, None)
    cloud = options.view_as(GoogleCloudOptions)
    problems = [validator.validate_gcs_path(cloud, name) for name in ("temp_location", "staging_location")]
    if all(problems):
        raise ValueError(f"a dry run needs --temp_location gs://<bucket>/<path>: {problems[0][0]}")


def _is_splittable(transform) -> bool:
    if transform.spec.urn != common_urns.primitives.PAR_DO.urn:
        return False
    return bool(beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload).restriction_coder_id)


def _container_image(environment) -> str:
    if environment.urn != "beam:env:docker:v1":
        return ""
    return beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image


def format_translation(translated: TranslatedJob) -> str:
    return "\n".join([
        f"dry run: {translated.runner} would submit job '{translated.job_name}' ({translated.job_type})",
        f"  {translated.transforms} transforms, {translated.splittable_dofns} splittable DoFn stage(s)",
        *(f"  environment: {env}" for env in translated.environments),
        "  nothing was submitted, read or written",
    ])
