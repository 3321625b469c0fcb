"""Publishing across runs: a graph run twice, a launcher that stops waiting for a job that
runs on, a launcher killed mid-publish, unbounded input on runners without bundle
finalization. Real Beam runners and real files, except where a fault cannot be caused for
real offline (each such test says so)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import apache_beam as beam
import pyarrow.dataset as ds
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_stream

from inference_enrich import DEAD_LETTER_TAG, Enrich, ReadDocuments, WriteDeadLetters, WriteEnrichedParquet
from inference_enrich.pipelines import enrich
from inference_enrich.transforms.publishing import publish
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.errors import JobFailed
from inference_enrich.pipelines.output_guard import OutputLock, OutputRefused
from inference_enrich.transforms.bundle_files import MANIFEST, STAGING_PREFIX, RunFiles

from pipeline_helpers import read_dead_letters, run, write_lines

IDS = ["r1", "r2", "r3"]


def test_a_graph_run_twice_publishes_both_runs(tmp_path):
    """A classic template, or a notebook re-running ``p.run()``: each run of the graph is a
    run of its own (its own id and staging), and the public writers add to the directory."""
    source = write_lines(tmp_path / "in.jsonl", [
        *(json.dumps({"id": i, "text": f"Record {i}: the whale surfaced."}).encode() for i in IDS),
        b"not json"])
    output = tmp_path / "out"
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    read = pipeline | ReadDocuments([str(source)])
    enriched, dead_letters = read.documents | Enrich("my-elser-model")
    _ = enriched | WriteEnrichedParquet(str(output), "text", "embedding", "sparse_embedding")
    _ = (read[DEAD_LETTER_TAG], dead_letters) | beam.Flatten() | WriteDeadLetters(str(output))
    for _ in range(2):
        assert pipeline.run().wait_until_finish() == "DONE"
    rows = ds.dataset(str(output), format="parquet").to_table().column("id").to_pylist()
    assert sorted(rows) == sorted(IDS * 2)
    assert [letter["stage"] for letter in read_dead_letters(str(output))] == ["parse", "parse"]
    assert not list(output.rglob(f"{STAGING_PREFIX}*"))


def test_a_launcher_that_stops_waiting_keeps_the_lock_of_the_job_that_runs_on(tmp_path, monkeypatch):
    """A mock of the run: a job that runs on after its launcher stopped waiting (Dataflow,
    publish: pipeline) cannot be caused offline. What matters is the launcher's part: it must
    not release the lock, or the next run would delete the live job's staging."""
    output = tmp_path / "out"

    def detached(job, options, endpoint, run_files):
        os.makedirs(RunFiles(job.output, run_files.run_id).paths()[2])  # the job is staging its files
        raise JobFailed("wait_until_finish: connection reset", published=None)

    monkeypatch.setattr(enrich, "_run_locked", detached)
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "a", "text": "x"}'])
    job = JobConfig(input=[str(source)], output=str(output), publish="pipeline")
    with pytest.raises(JobFailed) as failed:
        enrich.run_job(job, PipelineOptions(["--runner=DataflowRunner"]))
    assert failed.value.published is None
    staging = list(output.glob(f"{STAGING_PREFIX}*"))
    assert len(staging) == 1
    with pytest.raises(OutputRefused, match="being written by another enrich run"):
        OutputLock(str(output), "next-run").acquire()
    assert staging[0].is_dir(), "the next run deleted the live job's staging"


def _stage(output: Path, run_id: str, count: int) -> RunFiles:
    run_files = RunFiles(str(output), run_id)
    os.makedirs(run_files.staging, exist_ok=True)
    names = [f"part-{os.urandom(16).hex()}.parquet" for _ in range(count)]
    for name in names:
        Path(run_files.staging, name).write_text(run_id)
    Path(run_files.staging, MANIFEST).write_text(json.dumps({"files": names}))
    return run_files


def _parts(output: Path) -> list[str]:
    return sorted(path.read_text() for path in output.glob("part-*"))


def test_a_publish_killed_midway_is_finished_by_the_next_run(tmp_path, monkeypatch):
    """Killing the launcher between two renames is simulated by a publish_file that raises
    KeyboardInterrupt on its second call (a kill at that instant cannot be timed for real)."""
    output = tmp_path / "out"
    publish.publish_output(_stage(output, "old", 2), replace=True)
    killed = _stage(output, "r1", 3)
    original, calls = RunFiles.publish_file, []

    def interrupted(self, name):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt("launcher killed mid-publish")
        original(self, name)

    monkeypatch.setattr(RunFiles, "publish_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish.publish_output(killed, replace=True)
    monkeypatch.setattr(RunFiles, "publish_file", original)
    assert _parts(output) == ["r1"] and not (output / publish.SUCCESS).exists()

    OutputLock(str(output), "r2").acquire().release()  # the next run takes over the output
    assert _parts(output) == ["r1"] * 3
    assert publish.success_marker(*RunFiles(str(output), "r2").paths()[:2])["run_id"] == "r1"
    assert not list(output.glob(f"{STAGING_PREFIX}*"))
    publish.publish_output(_stage(output, "r2", 2), replace=True)
    assert _parts(output) == ["r2"] * 2


def test_unbounded_input_is_refused_on_a_runner_without_bundle_finalization(tmp_path):
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=BundleBasedDirectRunner", "--streaming"]))
    letters = pipeline | test_stream.TestStream().add_elements(
        [{"stage": "x", "error": f"e{i}"} for i in range(3)]).advance_watermark_to_infinity()
    with pytest.raises(ValueError, match="unbounded input .*bundle finalization"):
        _ = letters | WriteDeadLetters(str(tmp_path / "out"))


def test_a_streaming_run_fails_when_finalization_never_moved_its_files(tmp_path):
    """Files the run handed to bundle finalization but that were never moved fail the run;
    an orphan of a retried bundle (never handed over) alone does not."""
    output = tmp_path / "out"
    run_files = RunFiles(str(output), "s1", streaming=True)
    os.makedirs(run_files.staging)
    Path(run_files.staging, "part-orphan.jsonl").write_text("{}")
    publish.finish_streaming(run_files)  # an orphan alone: kept for inspection, no failure
    Path(run_files.staging, "part-handed.jsonl").write_text("{}")
    run_files.record_handed_over("part-handed.jsonl")
    with pytest.raises(publish.UnpublishedFiles, match="1 file.* never published"):
        publish.finish_streaming(run_files)


def test_an_overwrite_replaces_dead_letters_a_public_writer_published(tmp_path):
    """``WriteDeadLetters(dir)`` lists its files in ``_dead_letter/_SUCCESS``; a later
    ``enrich run --mode overwrite`` into ``dir`` must replace them too, not keep them."""
    output = tmp_path / "out"
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    _ = pipeline | beam.Create([{"stage": "old", "error": f"e{i}"} for i in range(3)]) \
        | WriteDeadLetters(str(output))
    assert pipeline.run().wait_until_finish() == "DONE"
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "a", "text": "the whale"}', b"not json"])
    run(JobConfig(input=[str(source)], output=str(output), mode="overwrite"))
    assert [letter["stage"] for letter in read_dead_letters(str(output))] == ["parse"]
    assert not (output / "_dead_letter" / publish.SUCCESS).exists()


def test_enrich_run_streaming_is_refused_on_a_runner_without_bundle_finalization(tmp_path):
    """Refused before any work (no broker is contacted: the address is never used)."""
    job = JobConfig(source="kafka", kafka_bootstrap="127.0.0.1:9", kafka_topic=["t"], kafka_group="g",
                    output=str(tmp_path / "out"), streaming=True, stop_after_records=1)
    with pytest.raises(ValueError, match="never calls bundle finalization"):
        run(job, ["--runner=BundleBasedDirectRunner", "--streaming"])


def test_a_second_run_under_the_same_run_id_is_published_not_dropped(tmp_path):
    """On our Dask runner the public writers' run id is fixed when the graph is built (it
    computes side inputs per use): a second run of that graph stages under the same id, and
    its files must be published, not taken for a repeat of the first run's publish."""
    output = tmp_path / "out"
    publish.publish_output(_stage(output, "same", 2), replace=False)
    publish.publish_output(_stage(output, "same", 2), replace=False)
    assert _parts(output) == ["same"] * 4
    assert not list(output.glob(f"{STAGING_PREFIX}*"))
