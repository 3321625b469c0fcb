"""A network fault while reading an input file is retried, never turned into lost records.

The inputs are served over real HTTP by ``CuttingHttpServer`` (127.0.0.1, started here) and
read through fsspec's ``http://`` filesystem (aiohttp), which meets a real
``ClientPayloadError`` when the server cuts a response mid-body. fsspec reads HTTP files in
blocks (5 MiB by default); the tests set 64 KiB blocks, as a user can (``FSSPEC_HTTP``), so
that a cut falls in the middle of a file a test can enrich in seconds.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import fsspec
import pytest
from fsspec.implementations.http import HTTPFileSystem

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.enrich import failure_reason
from inference_enrich.transforms.resumable_reads import RetryPolicy, TransientReadError, open_resumable

from cutting_http_server import CuttingHttpServer
from pipeline_helpers import read_dead_letters, read_output, run

BLOCK = 1 << 16
RECORDS = 100
FAST_RETRY = RetryPolicy(attempts=4, first_delay_s=0.05)


def write_corpus(path) -> bytes:
    """``RECORDS`` short documents, padded so that the file spans several 64 KiB blocks."""
    lines = [json.dumps({"id": f"doc-{i}", "text": f"Document {i} is about whales and ships.",
                         "padding": "p" * 4000}) for i in range(RECORDS)]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return data


@pytest.fixture
def small_http_blocks(monkeypatch):
    monkeypatch.setitem(fsspec.config.conf, "http", {"block_size": BLOCK})
    HTTPFileSystem.clear_instance_cache()
    yield
    HTTPFileSystem.clear_instance_cache()


def test_cut_connections_resume_at_the_byte_reached(tmp_path, small_http_blocks):
    data = write_corpus(tmp_path / "docs.jsonl")
    with CuttingHttpServer(tmp_path, cuts=3, cut_from=BLOCK) as server:
        with open_resumable(f"{server.url}/docs.jsonl", None, FAST_RETRY) as stream:
            assert stream.read() == data
    assert len(server.cut_at) == 3 and all(BLOCK < at < len(data) for at in server.cut_at)


def test_cut_connections_resume_inside_a_compressed_file(tmp_path, small_http_blocks):
    data = write_corpus(tmp_path / "docs.jsonl")
    (tmp_path / "docs.jsonl.gz").write_bytes(gzip.compress(data, compresslevel=0))
    with CuttingHttpServer(tmp_path, cuts=2, cut_from=BLOCK) as server:
        with open_resumable(f"{server.url}/docs.jsonl.gz", "gzip", FAST_RETRY) as stream:
            assert stream.read() == data
    assert len(server.cut_at) == 2


def test_a_connection_cut_mid_file_loses_no_record(tmp_path, small_http_blocks):
    write_corpus(tmp_path / "docs.jsonl")
    output = str(tmp_path / "out")
    with CuttingHttpServer(tmp_path, cuts=1, cut_from=3 * BLOCK) as server:
        summary = run(JobConfig(input=[f"{server.url}/docs.jsonl"], output=output))
    assert len(server.cut_at) == 1
    assert read_dead_letters(output) == []
    assert set(read_output(output)) == {f"doc-{i}" for i in range(RECORDS)}
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (RECORDS, RECORDS, 0)


def test_a_connection_cut_on_every_attempt_fails_the_run_naming_file_and_offset(tmp_path):
    write_corpus(tmp_path / "docs.jsonl")
    output = tmp_path / "out"
    env = {**os.environ, "FSSPEC_HTTP": json.dumps({"block_size": BLOCK})}
    with CuttingHttpServer(tmp_path, cuts=10_000, cut_from=3 * BLOCK) as server:
        url = f"{server.url}/docs.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--input", url,
             "--output", str(output), "--quiet"],
            capture_output=True, text=True, timeout=600, env=env,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("enrich: error:") and url in message
    assert f"past byte {3 * BLOCK}" in message and "ClientPayloadError" in message
    assert not any(output.glob("part-*")), "a failed run must publish nothing"


def test_corrupt_data_is_a_dead_letter_and_the_run_says_the_file_was_cut_short(tmp_path):
    lines = b"".join(b'{"text": "Whales sing.", "noise": "%s"}\n' % os.urandom(2000).hex().encode() for _ in range(20))
    good = gzip.compress(lines)
    (tmp_path / "broken.jsonl.gz").write_bytes(good[: len(good) // 2])  # truncated: bad compression
    output = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--input",
         str(tmp_path / "broken.jsonl.gz"), "--output", str(output), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "files cut short          1" in done.stdout
    rows = read_output(str(output))
    (letter,) = read_dead_letters(str(output))
    assert letter["stage"] == "read" and "EOFError" in letter["error"]
    assert letter["line"] == len(rows) + 1 and 0 < len(rows) < 20
    assert (output / "_SUCCESS").is_file()


def test_retries_are_bounded_and_name_the_offset(tmp_path, small_http_blocks):
    write_corpus(tmp_path / "docs.jsonl")
    with CuttingHttpServer(tmp_path, cuts=10_000, cut_from=BLOCK) as server:
        with pytest.raises(TransientReadError, match=rf"docs.jsonl past byte {BLOCK}: gave up after 4 attempts"):
            with open_resumable(f"{server.url}/docs.jsonl", None, FAST_RETRY) as stream:
                stream.read()
    assert len(server.cut_at) == 4


def test_the_failure_message_is_the_workers_error_in_one_line():
    # In-process runners re-raise the worker's exception; multi-process and portable ones
    # wrap its whole traceback in a RuntimeError.
    in_process = TransientReadError("cannot read http://h/docs.jsonl past byte 5 [while running 'Read']")
    assert failure_reason(in_process) == (
        "TransientReadError: cannot read http://h/docs.jsonl past byte 5 [while running 'Read']")
    wrapped = RuntimeError(
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in process\n"
        "ConnectionResetError: reset\n\nDuring handling of the above exception, another exception occurred:\n"
        "inference_enrich.transforms.resumable_reads.TransientReadError: cannot read "
        "http://h/docs.jsonl past byte 5 [while running 'Read']\n\n")
    assert failure_reason(wrapped) == (
        "TransientReadError: cannot read http://h/docs.jsonl past byte 5 [while running 'Read']")


def test_a_connection_cut_inside_a_byte_range_resumes_in_that_range(tmp_path, small_http_blocks):
    # Ranges of 3 blocks: every range but the first seeks first; cuts hit ranges mid-way.
    import apache_beam as beam

    from inference_enrich.transforms.documents import DEAD_LETTER_TAG
    from inference_enrich.transforms.read_files import ReadDocuments

    data = write_corpus(tmp_path / "docs.jsonl")
    ids = tmp_path / "ids"
    with CuttingHttpServer(tmp_path, cuts=3, cut_from=BLOCK) as server:
        with beam.Pipeline(argv=["--runner=FnApiRunner"]) as pipeline:
            read = pipeline | ReadDocuments([f"{server.url}/docs.jsonl"], retry=FAST_RETRY, split_bytes=3 * BLOCK)
            _ = read.documents | beam.Map(lambda doc: doc.id) | beam.io.WriteToText(str(ids / "part"))
            _ = read[DEAD_LETTER_TAG] | beam.Map(lambda letter: pytest.fail(f"dead letter: {letter}"))
    assert len(server.cut_at) == 3 and len(data) > 2 * 3 * BLOCK  # three ranges, two of them seek
    got = [line for part in ids.glob("part*") for line in part.read_text().splitlines()]
    assert sorted(got) == sorted(f"doc-{i}" for i in range(RECORDS))
