"""The ``enrich`` command as a user runs it: a real subprocess, real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from conftest import SEED_TEXT
from services import free_port

ENRICH = [sys.executable, "-m", "inference_enrich.pipelines.cli"]
REPO = Path(__file__).resolve().parents[1]


def enrich(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ENRICH, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "enrich"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("enrich ")


def test_run_without_arguments_enriches_the_sample_corpus(tmp_path):
    done = enrich("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "records in              41" in out
    assert "records out             41" in out
    assert "dead-lettered            0" in out
    assert "top tokens:" in out and "docs/s" in out
    table = ds.dataset(tmp_path / "enrich-output").to_table()
    assert table.num_rows == 41
    assert "my-elser-model" in done.stderr  # start-up line


def test_run_with_config_file_and_flag_override(tmp_path):
    (tmp_path / "docs.csv").write_text('doc,body\n1,"Whales sing."\n2,""\n')
    (tmp_path / "job.yaml").write_text(
        "source: {input: docs.csv}\n"
        "inference: {text_field: body, id_field: doc, output_field: tokens}\n"
        "sink: {output: out-from-config}\n"
    )
    done = enrich("run", "--config", str(tmp_path / "job.yaml"), "--output", str(tmp_path / "out"),
                  "--quiet", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "dead-lettered            1" in done.stdout
    rows = ds.dataset(tmp_path / "out").to_table().to_pylist()
    assert [(r["id"], r["body"]) for r in rows] == [("1", "Whales sing.")]
    assert dict(rows[0]["tokens"])["whales"] > 0
    assert not (tmp_path / "out-from-config").exists()


def test_bad_config_is_a_clear_error(tmp_path):
    (tmp_path / "job.yaml").write_text("inference: {batch: 3}\n")
    done = enrich("run", "--config", str(tmp_path / "job.yaml"))
    assert done.returncode == 2
    assert f"{tmp_path / 'job.yaml'}: inference.batch: unknown key" in done.stderr


def test_unknown_inference_id_is_a_clear_error(tmp_path):
    done = enrich("run", "--inference-id", "nope", cwd=tmp_path)
    assert done.returncode == 2
    assert "Inference endpoint not found [nope]" in done.stderr


def test_infer_prints_the_elasticsearch_response():
    done = enrich("infer", "sparse_embedding", "my-elser-model", SEED_TEXT)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    (result,) = response["sparse_embedding"]
    assert result["is_truncated"] is False
    assert {"port", "sky", "television"} <= set(list(result["embedding"])[:10])


def test_infer_with_wrong_task_type():
    done = enrich("infer", "text_embedding", "my-elser-model", "hello")
    assert done.returncode == 2
    assert ("Incompatible task_type, the requested type [text_embedding] does not match the "
            "model type [sparse_embedding]") in done.stderr


def test_infer_dense_several_inputs():
    done = enrich("infer", "text_embedding", "my-minilm", "one", "two")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["text_embedding"]
    assert len(results) == 2 and all(len(r["embedding"]) == 384 for r in results)


def test_infer_without_task_type_uses_the_endpoints():
    """As the REST route ``POST _inference/<inference_id>``: the task type is optional."""
    done = enrich("infer", "my-elser-model", "whales", "sing")
    assert done.returncode == 0, done.stderr
    assert [bool(r["embedding"]) for r in json.loads(done.stdout)["sparse_embedding"]] == [True, True]
    done = enrich("infer", "my-minilm", "one")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["text_embedding"][0]["embedding"]) == 384
    assert "[TASK_TYPE] INFERENCE_ID TEXT" in enrich("infer", "--help").stdout
    done = enrich("infer", "sparse_embedding", "my-elser-model")  # the text forgotten
    assert done.returncode == 2
    assert "required after sparse_embedding: INFERENCE_ID TEXT" in done.stderr


@pytest.mark.parametrize("command", [["endpoints", "--json"], ["infer", "my-minilm", "one", "two"]],
                         ids=" ".join)
def test_output_cut_short_by_its_reader_is_no_traceback(command):
    """``enrich ... | head``: the reader closes the pipe; enrich stops quietly, status 141 as
    a shell reports a command ended by SIGPIPE."""
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # as users run it
    process = subprocess.Popen([*ENRICH, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=buffered)
    process.stdout.close()  # before enrich writes: its first write finds no reader
    stderr = process.stderr.read()
    assert process.wait(timeout=600) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


@pytest.mark.parametrize("command", [["endpoints", "--json"], ["infer", "my-minilm", "one"]], ids=" ".join)
def test_output_that_cannot_be_written_is_one_line_and_a_failure(command):
    """``enrich ... > /dev/full``: stdout refuses every write (no space left). The output is
    lost, so the status is not 0, and the reason is one line, not a traceback."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([*ENRICH, *command], stdout=full, stderr=subprocess.PIPE, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["enrich: error: cannot write the output: [Errno 28] No space left on device"]


def test_search_help_says_what_top_k_is():
    help_text = " ".join(enrich("search", "--help").stdout.split())
    assert "--top-k K, --top_k K how many hits to show (default: 10)" in help_text


def test_endpoints_lists_the_configured_endpoints():
    done = enrich("endpoints", "--json")
    assert done.returncode == 0, done.stderr
    ids = {e["inference_id"]: e["task_type"] for e in json.loads(done.stdout)["endpoints"]}
    assert ids == {"my-elser-model": "sparse_embedding", "my-minilm": "text_embedding",
                   "my-elser-model-int8": "sparse_embedding"}
    table = enrich("endpoints").stdout
    assert "my-elser-model" in table and "model_id=splade-tiny" in table


def test_run_help_lists_every_option():
    done = enrich("run", "--help")
    assert done.returncode == 0
    for option in ("--config", "--input", "--format", "--output", "--inference-id", "--text-field",
                   "--id-field", "--output-field", "--max-batch-tokens", "--max-batch-size",
                   "--num-threads", "--runner", "--direct_num_workers", "--direct_running_mode"):
        assert option in done.stdout, option


@pytest.mark.parametrize("flags, message", [
    (["--reorder-window-ms", "-1"], "the batch wait and the reorder window must be >= 0"),
    (["--max-batch-tokens", "0"], "batch limits must be positive"),
])
def test_serve_refuses_bad_batching_flags_before_listening(flags, message):
    done = enrich("serve", "--port", str(free_port()), *flags)
    assert done.returncode == 2 and f"enrich: error: {message}" in done.stderr, done.stderr


@pytest.mark.parametrize("sink", ["elasticsearch", "opensearch"])
@pytest.mark.parametrize("command", ["run", "search"])
def test_unreachable_index_is_one_error_line_and_exit_status_1(tmp_path, sink, command):
    """A cluster nobody listens for (connection refused): no traceback, one line naming it."""
    url = f"http://127.0.0.1:{free_port()}"
    if command == "run":
        done = enrich("run", "--sink", sink, "--es-url", url, "--index", "docs", "--quiet",
                      "--output", str(tmp_path / "out"), cwd=tmp_path)
    else:
        done = enrich("search", "whale at sea", "--sink", sink, "--es-url", url, "--index", "docs",
                      cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"enrich: error: cannot connect to {sink} {url} index 'docs': Connection refused"]
    assert not (tmp_path / "out").exists()
