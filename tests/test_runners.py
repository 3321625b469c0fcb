"""A pipeline built with only the public API writes a complete, published output on runners
that behave like clusters: ``BundleBasedDirectRunner`` (no bundle finalization, as Flink),
``PortableRunner`` against a separately started Beam worker pool (``--environment_type
EXTERNAL``, how Flink and Spark run Python workers), and Dask on a ``dask.distributed``
cluster of two worker processes. Each must give the same records and dead letters as the
in-process FnApiRunner. Real runners, real model, real files; a handful of records."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from inference_enrich import DEAD_LETTER_TAG, Enrich, ReadDocuments, WriteDeadLetters, WriteEnrichedParquet

from inference_enrich.pipelines.config import JobConfig

from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run, write_lines
from runner_services import beam_worker_pool, dask_cluster

IDS = ["r1", "r2", "r3", "r4", "r5"]


def corpus(path: Path) -> Path:
    """Five valid records, one line that is not JSON and one record without text."""
    lines = [json.dumps({"id": i, "text": f"Record {i}: the whale surfaced near the port."}).encode()
             for i in IDS]
    return write_lines(path, [*lines, b"not json", b'{"id": "no-text", "title": "none"}'])


def run_public_pipeline(source: Path, output: Path, argv: list[str]) -> None:
    """The README's composition: read, enrich, write Parquet and dead letters; nothing else."""
    pipeline = beam.Pipeline(options=PipelineOptions(argv))
    read = pipeline | ReadDocuments([str(source)])
    enriched, dead_letters = read.documents | Enrich("my-elser-model")
    _ = enriched | WriteEnrichedParquet(str(output), "text", "embedding", "sparse_embedding")
    _ = (read[DEAD_LETTER_TAG], dead_letters) | beam.Flatten() | WriteDeadLetters(str(output))
    pipeline.run().wait_until_finish()


def published(output: Path) -> tuple[dict[str, list], list[tuple]]:
    """What a reader of ``output`` sees, after checking it is a finished output: ``_SUCCESS``
    present and no staging directory left anywhere under it."""
    assert (output / "_SUCCESS").exists(), sorted(map(str, output.rglob("*")))
    staging = [str(path) for path in output.rglob(".staging-*")]
    assert not staging, staging
    rows = {key: sorted(row["embedding"]) for key, row in read_output(str(output)).items()}
    letters = sorted((letter["stage"], letter["line"]) for letter in read_dead_letters(str(output)))
    return rows, letters


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process runner's output for the corpus: what every other runner must give."""
    directory = tmp_path_factory.mktemp("reference")
    source = corpus(directory / "in.jsonl")
    run_public_pipeline(source, directory / "out", IN_PROCESS)
    rows, letters = published(directory / "out")
    assert set(rows) == set(IDS)
    assert letters == [("parse", 6), ("validate", 7)]
    return source, rows, letters


def test_bundle_based_direct_runner_publishes_without_bundle_finalization(reference, tmp_path):
    source, rows, letters = reference
    run_public_pipeline(source, tmp_path / "out", ["--runner=BundleBasedDirectRunner"])
    assert published(tmp_path / "out") == (rows, letters)
    for publish in ("launcher", "pipeline"):  # `enrich run`, either way of publishing
        job = JobConfig(input=[str(source)], output=str(tmp_path / publish), publish=publish)
        run(job, ["--runner=BundleBasedDirectRunner"])
        assert published(tmp_path / publish) == (rows, letters)


@pytest.mark.slow
def test_portable_runner_against_a_separate_worker_pool(reference, tmp_path):
    """How Flink and Spark run Python: the SDK workers are other processes, started by a
    worker pool the job only knows by address."""
    source, rows, letters = reference
    with beam_worker_pool(tmp_path) as port:
        argv = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                f"--environment_config=127.0.0.1:{port}"]
        run_public_pipeline(source, tmp_path / "out", argv)
        summary = run(JobConfig(input=[str(source)], output=str(tmp_path / "job")), argv)
    assert published(tmp_path / "out") == (rows, letters)
    assert published(tmp_path / "job") == (rows, letters)  # `enrich run` on the same workers
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (7, 5, 2)


@pytest.mark.slow
def test_dask_on_a_two_process_cluster(reference, tmp_path):
    """A real distributed engine from PyPI: a dask.distributed scheduler and two worker
    processes, through our fixed subclass of Beam's DaskRunner (see its module)."""
    source, rows, letters = reference
    with dask_cluster(tmp_path) as address:
        run_public_pipeline(source, tmp_path / "out", [
            "--runner=inference_enrich.pipelines.dask_runner.DaskRunner",
            f"--dask_client_address={address}"])
    assert published(tmp_path / "out") == (rows, letters)


def test_beams_own_dask_runner_is_refused_where_the_pipeline_is_built(tmp_path):
    """It would run only the last branch, mix tagged outputs and drop finish_bundle outputs:
    refused in one line, naming the runner that works."""
    pipeline = beam.Pipeline(runner="apache_beam.runners.dask.dask_runner.DaskRunner")
    records = pipeline | beam.Create([{"id": "a", "text": "whale"}])
    with pytest.raises(ValueError, match=r"^Enrich cannot run here: Beam's DaskRunner runs only "
                                         r".*use --runner inference_enrich.pipelines.dask_runner.DaskRunner$"):
        _ = records | Enrich("my-elser-model")
    with pytest.raises(ValueError, match="cannot run here: Beam's DaskRunner"):
        _ = records | WriteDeadLetters(str(tmp_path / "out"))


@pytest.mark.parametrize("runner", ["apache_beam.runners.dask.dask_runner.DaskRunner",
                                    "inference_enrich.pipelines.dask_runner.DaskRunner"])
def test_enrich_run_refuses_a_runner_without_metrics_before_any_work(runner, tmp_path, capsys):
    from inference_enrich.pipelines.cli import main

    source = corpus(tmp_path / "in.jsonl")
    status = main(["run", "--input", str(source), "--output", str(tmp_path / "out"), f"--runner={runner}"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2
    assert error == (f"enrich: error: enrich run cannot use {runner}: it reports no metrics, which "
                     "the run's accounting check and summary need; compose the public transforms "
                     "in a pipeline of your own instead (README, \"Runners\")")
    assert not (tmp_path / "out").exists()
