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


@pytest.mark.slow
def test_worker_processes_print_no_warning_the_user_cannot_act_on(tmp_path):
    """Beam's workers warn "No semi_persistent_directory found" on every multi_processing run
    (a Dataflow staging detail); ``enrich run`` keeps its output to what the user can act on."""
    import subprocess
    import sys

    (tmp_path / "docs.jsonl").write_text('{"id": "1", "text": "Whales sing."}\n{"id": "2", "text": "Ships sail."}\n')
    done = subprocess.run([sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--input",
                           str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "out"), "--num-threads", "1",
                           "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "records out              2" in done.stdout
    assert "semi_persistent_directory" not in done.stderr, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
