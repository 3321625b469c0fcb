"""Publishing touches no file enrich did not write (#21, item 1): save modes, a lock per output
directory, and each run's staging is its own. Real FnApiRunner runs, real files."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.transforms.publishing.output_dir import SUCCESS
from inference_enrich.transforms.publishing.publish import publish_output
from inference_enrich.transforms.bundle_files import STAGING_PREFIX

from pipeline_helpers import read_dead_letters, read_output, run, write_lines
from test_publish_in_pipeline import run_pipeline

ENRICH = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def enrich(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ENRICH, *args, "--quiet"], capture_output=True, text=True, timeout=600)


def corpus(path: Path, prefix: str, count: int) -> Path:
    """``count`` records and one line that is not JSON (a dead letter)."""
    return write_lines(path, [*(json.dumps({"id": f"{prefix}-{i}", "text": f"Record {i} of {prefix}."}).encode()
                                for i in range(count)), b"not json"])


def theirs(output: Path) -> dict[Path, bytes]:
    """Files a user (and Spark) keep in the output directory, with names like ours."""
    files = {output / "part-report.docx": b"my report",
             output / "part-00000-7c2d0e39-c000.snappy.parquet": b"PAR1 spark's",
             output / "_dead_letter" / "part-notes.txt": b"my notes"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def assert_kept(files: dict[Path, bytes]) -> None:
    for path, data in files.items():
        assert path.read_bytes() == data, f"{path} was touched"


@pytest.mark.parametrize("publish", ["launcher", "pipeline"])
def test_runs_into_an_output_directory_that_also_holds_their_own_part_files(tmp_path, publish):
    """Old code: the first run deleted part-report.docx and Spark's part file."""
    output = tmp_path / "out"
    files = theirs(output)
    first = corpus(tmp_path / "a.jsonl", "a", 3)
    refused = enrich("run", "--input", str(first), "--output", str(output), "--publish", publish)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert str(output) in line and "--mode overwrite" in line and "--mode append" in line
    assert_kept(files)
    assert sorted(p.name for p in output.iterdir()) == ["_dead_letter", "part-00000-7c2d0e39-c000.snappy.parquet",
                                                        "part-report.docx"]

    done = enrich("run", "--input", str(first), "--output", str(output), "--publish", publish, "--mode", "overwrite")
    assert done.returncode == 0, done.stderr
    assert_kept(files)
    ours = json.loads((output / SUCCESS).read_text())["published"]
    assert len(ours) == 2 and all((output / name).is_file() for name in ours)

    # Now an enrich output: a rerun replaces the files the last run published, only those.
    second = corpus(tmp_path / "b.jsonl", "b", 2)
    done = enrich("run", "--input", str(second), "--output", str(output), "--publish", publish)
    assert done.returncode == 0, done.stderr
    assert_kept(files)
    assert not any((output / name).exists() for name in ours)
    names = json.loads((output / SUCCESS).read_text())["published"]
    assert len(names) == 2 and all((output / name).is_file() for name in names)
    assert not list(output.glob(f"{STAGING_PREFIX}*"))


def test_save_modes(tmp_path):
    output = tmp_path / "out"
    a, b = corpus(tmp_path / "a.jsonl", "a", 2), corpus(tmp_path / "b.jsonl", "b", 3)
    assert enrich("run", "--input", str(a), "--output", str(output), "--mode", "error-if-exists").returncode == 0
    refused = enrich("run", "--input", str(b), "--output", str(output), "--mode", "error-if-exists")
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    assert enrich("run", "--input", str(b), "--output", str(output), "--mode", "append").returncode == 0
    assert set(read_output(str(output))) == {"a-0", "a-1", "b-0", "b-1", "b-2"}
    assert len(read_dead_letters(str(output))) == 2
    assert len(json.loads((output / SUCCESS).read_text())["published"]) == 4
    assert enrich("run", "--input", str(a), "--output", str(output), "--mode", "overwrite").returncode == 0
    assert set(read_output(str(output))) == {"a-0", "a-1"}  # both earlier runs' files replaced
    assert len(read_dead_letters(str(output))) == 1


@pytest.mark.parametrize("mode", ["overwrite", "append", None])
def test_an_output_that_cannot_hold_our_files_is_refused_at_start_in_one_line(tmp_path, mode):
    """An --output that is a file, or whose _SUCCESS is a directory, used to end in a
    traceback (the latter only after the whole run, leaving its staging behind)."""
    source = corpus(tmp_path / "a.jsonl", "a", 2)
    a_file = tmp_path / "afile"
    a_file.write_text("mine")
    marker_dir = tmp_path / "out"
    (marker_dir / SUCCESS).mkdir(parents=True)
    for output, problem in ((a_file, "is a file, not a directory"), (marker_dir, "_SUCCESS is a directory")):
        done = enrich("run", "--input", str(source), "--output", str(output), *(["--mode", mode] if mode else []))
        assert done.returncode == 2, done.stderr
        assert problem in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert a_file.read_text() == "mine" and [p.name for p in marker_dir.iterdir()] == [SUCCESS]


def test_an_output_published_before_the_manifest_existed_is_still_replaced(tmp_path):
    """Outputs of earlier versions have a _SUCCESS without the list of files: their part
    files are the ones with our names (part-<32 hex digits>), and only those go."""
    output = tmp_path / "out"
    run(JobConfig(input=[str(corpus(tmp_path / "a.jsonl", "a", 2))], output=str(output)))
    marker = json.loads((output / SUCCESS).read_text())
    earlier = marker.pop("published")
    (output / SUCCESS).write_text(json.dumps(marker))
    files = theirs(output)
    run(JobConfig(input=[str(corpus(tmp_path / "b.jsonl", "b", 1))], output=str(output)))
    assert_kept(files)
    assert not any((output / name).exists() for name in earlier)
    names = json.loads((output / SUCCESS).read_text())["published"]
    assert sorted(str(p.relative_to(output)) for p in output.rglob("part-*")
                  if p not in files) == sorted(names)


def test_a_success_file_naming_files_outside_the_output_never_removes_them(tmp_path):
    """``_SUCCESS`` is a file in the user's directory: a hand-edited or hostile one may list
    ``../victim`` or an absolute path. An overwrite removes only files inside the output."""
    output = tmp_path / "out"
    run(JobConfig(input=[str(corpus(tmp_path / "a.jsonl", "a", 2))], output=str(output)))
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    absolute = tmp_path / "elsewhere" / "part-abs.txt"
    absolute.parent.mkdir()
    absolute.write_text("keep me too")
    marker = json.loads((output / SUCCESS).read_text())
    marker["published"] += ["../victim.txt", str(absolute), "", 7]
    (output / SUCCESS).write_text(json.dumps(marker))
    run(JobConfig(input=[str(corpus(tmp_path / "b.jsonl", "b", 1))], output=str(output)))
    assert outside.read_text() == "keep me" and absolute.read_text() == "keep me too"
    assert set(read_output(str(output))) == {"b-0"}


def test_no_run_removes_another_runs_staging(tmp_path):
    """Old code: publishing removed every .staging-* directory, another live run's too."""
    output = tmp_path / "out"
    job = JobConfig(input=[str(corpus(tmp_path / "a.jsonl", "a", 2))], output=str(output))
    other = run_pipeline(job.model_copy(update={"publish": "launcher"}))  # staged, not published
    mine = run_pipeline(job)
    publish_output(mine, replace=True)
    assert Path(other.paths()[2]).is_dir(), "the other run's staging was removed"
    assert not Path(mine.paths()[2]).exists()
    assert publish_output(other, replace=True) == 2  # the other run still publishes
    assert not list(output.glob(f"{STAGING_PREFIX}*"))


def test_two_runs_write_to_one_output_directory_at_once(tmp_path):
    """Old code: the second ran too; the first to publish removed the other's staging, which
    then failed with FileNotFoundError reported as exit 2. Now the second is refused at
    start, and once the first is killed (its lock is stale) a run goes ahead and clears the
    dead run's staging."""
    output = tmp_path / "out"
    big = corpus(tmp_path / "big.jsonl", "big", 3000)
    first = subprocess.Popen([*ENRICH, "run", "--input", str(big), "--output", str(output), "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(output.glob(f"{STAGING_PREFIX}*/part-*")) and first.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the second started: give it more input"
        second = enrich("run", "--input", str(corpus(tmp_path / "b.jsonl", "b", 2)), "--output", str(output))
        assert second.returncode == 2, second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert str(output) in line and "another enrich run" in line and f"pid {first.pid}" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert list(output.glob(f"{STAGING_PREFIX}*")), "the killed run left no staging"
    done = enrich("run", "--input", str(corpus(tmp_path / "c.jsonl", "c", 2)), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert set(read_output(str(output))) == {"c-0", "c-1"}
    assert not list(output.glob(f"{STAGING_PREFIX}*"))
    assert not [p for p in output.iterdir() if p.name.startswith(".") and p.is_file()], "lock left behind"


def test_a_spark_output_with_its_own_success_file_is_not_taken_for_ours(tmp_path):
    from inference_enrich.pipelines.output_guard import OutputRefused, check_save_mode

    output = tmp_path / "spark"
    output.mkdir()
    (output / "_SUCCESS").write_bytes(b"")  # what Spark writes
    (output / "part-00000-7c2d0e39-c000.snappy.parquet").write_bytes(b"PAR1")
    with pytest.raises(OutputRefused, match="not the output of an earlier enrich run"):
        check_save_mode(JobConfig(output=str(output)))
    check_save_mode(JobConfig(output=str(output), mode="append"))
    check_save_mode(JobConfig(output=str(tmp_path / "absent"), mode="error-if-exists"))


def test_a_lock_is_taken_over_only_when_its_run_is_gone(tmp_path):
    """A lock from another host is stale only once its heartbeat is older than its lease; a
    detached run's (publish: pipeline on a remote runner) outlives its launcher's pid."""
    from inference_enrich.pipelines.output_guard import DETACHED_LEASE_S, LEASE_S, OutputLock, OutputRefused
    from inference_enrich.transforms.publishing.output_dir import LOCK

    output = tmp_path / "out"
    output.mkdir()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()

    def held_by(run_id: str, host: str, pid: int, age_s: float, lease_s: float) -> None:
        (output / LOCK).write_text(json.dumps({"run_id": run_id, "host": host, "pid": pid, "started": "then",
                                               "heartbeat": time.time() - age_s, "lease_s": lease_s}))
        (output / f"{STAGING_PREFIX}{run_id}").mkdir(exist_ok=True)

    held_by("elsewhere", "another-host", 1, age_s=10, lease_s=LEASE_S)
    with pytest.raises(OutputRefused, match="being written by another enrich run .elsewhere, host another-host"):
        OutputLock(str(output), "mine").acquire()
    held_by("detached", socket.gethostname(), int(dead_pid), age_s=10, lease_s=DETACHED_LEASE_S)
    with pytest.raises(OutputRefused, match="detached"):
        OutputLock(str(output), "mine").acquire()
    assert (output / f"{STAGING_PREFIX}elsewhere").is_dir() and (output / f"{STAGING_PREFIX}detached").is_dir()

    held_by("silent", "another-host", 1, age_s=LEASE_S + 1, lease_s=LEASE_S)
    lock = OutputLock(str(output), "mine").acquire()
    assert json.loads((output / LOCK).read_text())["run_id"] == "mine"
    assert not list(output.glob(f"{STAGING_PREFIX}*")), "the staging of runs that no longer hold the lock stays"
    lock.release()
    assert not (output / LOCK).exists()
