"""``publish: pipeline``: a batch pipeline publishes its own output (and commits its Kafka end
offsets) as its last step, so a launcher that stops once the job is submitted (a Dataflow
Flex Template's) loses nothing. Real FnApiRunner, real files, real Kafka-protocol broker; the
pipelines here are run with plain ``pipeline.run().wait_until_finish()``, no ``run_job``."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.errors import JobFailed
from inference_enrich.pipelines.graph import build_pipeline, resolve_endpoint
from inference_enrich.transforms.publishing.output_dir import SUCCESS
from inference_enrich.transforms.publishing.publish import new_run_id, publish_output
from inference_enrich.transforms.bundle_files import STAGING_PREFIX, RunFiles, read_manifest
from inference_enrich.transforms.kafka import plan_partitions

from cutting_http_server import CuttingHttpServer
from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run, write_lines


def corpus(path: Path, ids: list[str]) -> Path:
    """One valid record per id, and one line that is not JSON (a dead letter)."""
    lines = [json.dumps({"id": i, "text": f"Record {i}: the whale surfaced."}).encode() for i in ids]
    return write_lines(path, [*lines, b"not json"])


def run_pipeline(job: JobConfig, partitions=()) -> RunFiles:
    """Build and run the job's pipeline as a launcher that does not publish would."""
    run_files = RunFiles(job.output, new_run_id())
    pipeline = beam.Pipeline(options=PipelineOptions(IN_PROCESS))
    build_pipeline(pipeline, job, resolve_endpoint(job), run_files, partitions)
    assert pipeline.run().wait_until_finish() == PipelineState.DONE
    return run_files


def listing(output: Path) -> list[str]:
    return sorted(str(path.relative_to(output)) for path in output.rglob("*"))


def success(output: Path) -> dict:
    return json.loads((output / SUCCESS).read_text())


def test_the_pipeline_publishes_its_output_and_a_rerun_replaces_it(tmp_path):
    output = tmp_path / "out"
    job = JobConfig(input=[str(corpus(tmp_path / "a.jsonl", ["a1", "a2", "a3"]))],
                    output=str(output), publish="pipeline")
    first = run_pipeline(job)
    assert set(read_output(str(output))) == {"a1", "a2", "a3"}
    assert [letter["stage"] for letter in read_dead_letters(str(output))] == ["parse"]
    assert success(output)["run_id"] == first.run_id
    assert not [name for name in listing(output) if name.startswith(STAGING_PREFIX)]

    job = job.model_copy(update={"input": [str(corpus(tmp_path / "b.jsonl", ["b1", "b2"]))]})
    second = run_pipeline(job)
    assert set(read_output(str(output))) == {"b1", "b2"}
    assert len(read_dead_letters(str(output))) == 1  # the first run's letter was replaced
    assert (success(output)["run_id"], success(output)["files"]) == (second.run_id, 2)
    assert not [name for name in listing(output) if name.startswith(STAGING_PREFIX)]


def test_a_retried_publish_finishes_what_a_failed_attempt_began(tmp_path):
    """The step that publishes may be retried after it moved some files: the retry must keep
    them (not remove them as an earlier run's parts) and move the rest; a retry after it
    finished changes nothing. Old code: the retry deleted the moved parts as the earlier
    run's, then failed with FileNotFoundError moving them."""
    output = tmp_path / "out"
    job = JobConfig(input=[str(corpus(tmp_path / "a.jsonl", ["a1", "a2"]))], output=str(output),
                    publish="pipeline")
    run_pipeline(job)
    staged_only = job.model_copy(update={"input": [str(corpus(tmp_path / "b.jsonl", ["b1", "b2", "b3"]))],
                                         "publish": "launcher"})
    run_files = run_pipeline(staged_only)  # staged and committed, not yet published
    names = read_manifest(run_files)
    assert len(names) == 2  # a part file and a dead-letter file
    run_files.publish_file(names[0])  # the failed attempt got this far

    assert publish_output(run_files, replace=True) == 2
    assert set(read_output(str(output))) == {"b1", "b2", "b3"}
    assert len(read_dead_letters(str(output))) == 1
    assert success(output)["run_id"] == run_files.run_id
    published = listing(output)
    assert not [name for name in published if name.startswith(STAGING_PREFIX)]

    assert publish_output(run_files, replace=True) == 2  # retried after it had finished
    assert listing(output) == published
    assert set(read_output(str(output))) == {"b1", "b2", "b3"}


def test_enrich_run_in_pipeline_mode_publishes_once_and_still_reports(tmp_path):
    output = tmp_path / "out"
    job = JobConfig(input=[str(corpus(tmp_path / "a.jsonl", ["a1", "a2"]))], output=str(output),
                    publish="pipeline")
    summary = run(job)
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (3, 2, 1)
    assert set(read_output(str(output))) == {"a1", "a2"}
    assert success(output)["files"] == 2


def test_a_failed_run_in_pipeline_mode_leaves_the_earlier_output_and_its_staging(tmp_path):
    """The job owns its staging in pipeline mode (the launcher's wait may fail while the job
    runs on), so a failure removes nothing and says publishing is the job's."""
    output = tmp_path / "out"
    job = JobConfig(input=[str(corpus(tmp_path / "a.jsonl", ["a1"]))], output=str(output), publish="pipeline")
    run(job)
    published = listing(output)
    (tmp_path / "served").mkdir()
    corpus(tmp_path / "served" / "docs.jsonl", ["b1"])
    with CuttingHttpServer(tmp_path / "served", cuts=10_000) as server:
        with pytest.raises(JobFailed, match="docs.jsonl past byte 0") as failed:
            run(job.model_copy(update={"input": [f"{server.url}/docs.jsonl"]}))
    assert failed.value.published is None
    assert set(read_output(str(output))) == {"a1"}
    left = [name for name in listing(output) if name not in published]
    # Staging is made when a writer opens its first file (the public writers learn their run
    # id only then): this run failed reading, so it may have left none; what it left is staging.
    assert all(name.startswith(STAGING_PREFIX) for name in left)
    run(job)  # the next successful run removes it
    assert not [name for name in listing(output) if name.startswith(STAGING_PREFIX)]


@pytest.mark.kafka
def test_a_bounded_kafka_pipeline_commits_its_end_offsets_after_publishing(kafka_bootstrap, tmp_path):
    from test_kafka import committed_offsets, kafka_job, new_topic, produce, valid_keys

    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 300)
    job = kafka_job(kafka_bootstrap, topic, str(tmp_path / "out"), group="publish-test", publish="pipeline")
    partitions = plan_partitions(job.kafka_settings())
    ends = {(r.topic, r.partition): r.stop for r in partitions}
    assert sum(ends.values()) == 300
    assert all(offset < 0 for offset in committed_offsets(job.kafka_settings()).values())

    run_pipeline(job, partitions)
    assert committed_offsets(job.kafka_settings()) == ends
    assert set(read_output(job.output)) == valid_keys(0, 300)
    assert len(read_dead_letters(job.output)) == 300 - len(valid_keys(0, 300))
    assert (tmp_path / "out" / SUCCESS).exists()


def test_a_pipeline_that_lost_a_record_publishes_nothing(tmp_path, monkeypatch):
    # Injected fault: no real stage of ours drops a record (that is what the check guards
    # against), so the inference step is made to swallow its first output.
    from inference_enrich.transforms.inference_dofn import InferenceDoFn

    flush = InferenceDoFn.flush

    def flush_dropping_the_first(self, entries):
        outputs = flush(self, entries)
        next(outputs, None)
        yield from outputs

    output = tmp_path / "out"
    job = JobConfig(input=[str(corpus(tmp_path / "a.jsonl", ["a1", "a2"]))], output=str(output),
                    publish="pipeline")
    run_pipeline(job)
    earlier = listing(output)
    monkeypatch.setattr(InferenceDoFn, "flush", flush_dropping_the_first)
    job = job.model_copy(update={"input": [str(corpus(tmp_path / "b.jsonl", ["b1", "b2", "b3"]))]})
    with pytest.raises(Exception, match="4 records were read but 3 reached the output or the dead letters"):
        run_pipeline(job)
    assert set(read_output(str(output))) == {"a1", "a2"}
    assert [name for name in listing(output) if not name.startswith(STAGING_PREFIX)] == earlier
