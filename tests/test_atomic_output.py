"""A run's output is published whole, on success only, as Hadoop/Spark output committers do.

Bundles write into ``OUTPUT/.staging-<run id>/``; only the files of bundles the runner
committed are moved into ``OUTPUT`` once the pipeline has succeeded, then ``_SUCCESS`` is
written. A killed or failed run leaves the previous output as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.enrich import JobFailed
from inference_enrich.transforms.write_parquet import ParquetBundleWriter

from cutting_http_server import CuttingHttpServer
from pipeline_helpers import read_dead_letters, read_output, run, write_lines

BAD_LINES = [b"not json", b"[1, 2]"]


def corpus(path: Path, prefix: str, count: int) -> Path:
    """``count`` documents, after two bad lines (so dead letters are written at once)."""
    lines = [json.dumps({"id": f"{prefix}-{i}", "text": f"Record {i} of {prefix}: whales, ships and the sea."}).encode()
             for i in range(count)]
    return write_lines(path, BAD_LINES + lines)


def files_under(directory: Path) -> set[Path]:
    return {Path(root) / name for root, _, names in os.walk(directory) for name in names}


def assert_published(output: Path, ids: set[str]) -> None:
    assert (output / "_SUCCESS").is_file()
    assert set(read_output(str(output))) == ids
    assert sorted(letter["line"] for letter in read_dead_letters(str(output))) == [1, 2]  # BAD_LINES
    assert not list(output.glob(".staging-*")), "staging left behind"


def test_a_killed_rerun_leaves_the_earlier_output_complete(tmp_path):
    output = tmp_path / "out"
    first = corpus(tmp_path / "first.jsonl", "first", 20)
    run(JobConfig(input=[str(first)], output=str(output)))
    assert_published(output, {f"first-{i}" for i in range(20)})
    earlier = ds.dataset(output).to_table().sort_by("id")
    before = files_under(output)

    second = corpus(tmp_path / "second.jsonl", "second", 1000)
    process = subprocess.Popen(
        [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--input", str(second),
         "--output", str(output), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while files_under(output) <= before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before it could be killed: give it more input"
        assert files_under(output) - before, "the run wrote nothing within 300 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    assert ds.dataset(output).to_table().sort_by("id").equals(earlier)
    assert (output / "_SUCCESS").is_file()
    assert len(read_dead_letters(str(output))) == len(BAD_LINES)

    run(JobConfig(input=[str(second)], output=str(output)))
    assert_published(output, {f"second-{i}" for i in range(1000)})


def test_a_failed_run_leaves_the_earlier_output_in_place(tmp_path):
    output = tmp_path / "out"
    first = corpus(tmp_path / "first.jsonl", "first", 10)
    run(JobConfig(input=[str(first)], output=str(output)))
    earlier = ds.dataset(output).to_table().sort_by("id")
    (tmp_path / "served").mkdir()
    corpus(tmp_path / "served" / "docs.jsonl", "second", 10)
    with CuttingHttpServer(tmp_path / "served", cuts=10_000) as server:
        with pytest.raises(JobFailed, match="docs.jsonl past byte 0"):
            run(JobConfig(input=[f"{server.url}/docs.jsonl"], output=str(output)))
    assert ds.dataset(output).to_table().sort_by("id").equals(earlier)
    assert_published(output, {f"first-{i}" for i in range(10)})


def test_a_retried_bundle_leaves_no_duplicates(tmp_path, monkeypatch):
    # Injected fault: no real runner here retries a bundle on its own, so the Parquet writer's
    # first bundle fails right after its file is complete (as if the worker died before the
    # runner committed the bundle). BundleBasedDirectRunner, a real Beam runner, then retries
    # that bundle; the orphaned file of the failed attempt must not be published.
    marker = tmp_path / "failed-once"
    finish_bundle = ParquetBundleWriter.finish_bundle

    def finish_then_fail_once(self):
        written = finish_bundle(self)
        if written is not None:
            yield from written
        if not marker.exists():
            marker.touch()
            raise RuntimeError("injected: the worker died before the bundle was committed")

    monkeypatch.setattr(ParquetBundleWriter, "finish_bundle", finish_then_fail_once)
    output = tmp_path / "out"
    source = corpus(tmp_path / "docs.jsonl", "doc", 50)
    run(JobConfig(input=[str(source)], output=str(output)), ["--runner=BundleBasedDirectRunner"])
    assert marker.exists(), "the fault was not injected"
    assert_published(output, {f"doc-{i}" for i in range(50)})  # read_output also asserts unique ids
    assert ds.dataset(output).count_rows() == 50


@pytest.mark.kafka
def test_kafka_runs_add_to_the_output_instead_of_replacing_it(kafka_bootstrap, tmp_path):
    # Each Kafka run reads only messages after the group's committed offsets, so replacing
    # the output would delete records whose offsets are already committed.
    from test_kafka import kafka_job, new_topic, produce, valid_keys

    topic, output = new_topic(kafka_bootstrap), tmp_path / "out"
    produce(kafka_bootstrap, topic, 0, 60)
    run(kafka_job(kafka_bootstrap, topic, str(output)))
    produce(kafka_bootstrap, topic, 60, 40)
    run(kafka_job(kafka_bootstrap, topic, str(output)))
    assert set(read_output(str(output))) == valid_keys(0, 100)
    assert (output / "_SUCCESS").is_file()

    produce(kafka_bootstrap, topic, 100, 30)  # streaming: each bundle published on commit
    run(kafka_job(kafka_bootstrap, topic, str(output), streaming=True, stop_after_records=30,
                  stop_after_seconds=120), ["--runner=FnApiRunner", "--streaming"])
    assert set(read_output(str(output))) == valid_keys(0, 130)
    assert len(read_dead_letters(str(output))) == 130 - len(valid_keys(0, 130))
    assert not list(output.glob(".staging-*"))
