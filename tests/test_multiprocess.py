"""Two worker processes (Beam's multi_processing mode) give the single-process output."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from inference_enrich.pipelines.config import JobConfig

from pipeline_helpers import read_dead_letters, read_output, run, sparse


@pytest.mark.slow
def test_two_worker_processes_equal_one(tmp_path):
    sample = resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl"
    records = [json.loads(line) for line in sample.read_text().splitlines()]
    # Several files so that both workers get some; a few bad lines to dead-letter.
    for shard in range(4):
        lines = [json.dumps({**r, "id": f"{r['id']}-{shard}"}) for r in records]
        lines.insert(shard, "not json")
        (tmp_path / f"shard-{shard}.jsonl").write_text("\n".join(lines) + "\n")
    pattern = str(tmp_path / "shard-*.jsonl")

    single = str(tmp_path / "single")
    multi = str(tmp_path / "multi")
    run(JobConfig(input=[pattern], output=single))
    summary = run(
        JobConfig(input=[pattern], output=multi, num_threads=1),
        ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )

    one, two = read_output(single), read_output(multi)
    assert len(one) == 4 * len(records)
    assert set(one) == set(two)
    for key, row in one.items():
        other = two[key]
        assert (row["text"], row["is_truncated"], row["passthrough"]) == (
            other["text"], other["is_truncated"], other["passthrough"])
        assert sparse(other) == pytest.approx(sparse(row), abs=1e-5)
    strip = lambda letters: sorted((l["source"], l["line"], l["stage"]) for l in letters)
    assert strip(read_dead_letters(single)) == strip(read_dead_letters(multi))
    assert len(read_dead_letters(multi)) == 4
    assert summary.records_written == len(two)
