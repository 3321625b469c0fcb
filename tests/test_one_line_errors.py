"""Issue #21, item 5: what cannot work fails in one line saying what failed and what to do,
with the exit status README's table gives, and no client's log lines or traceback.

Real processes: the ``enrich`` CLI in a subprocess, a port nothing listens on, and servers
that are not Elasticsearch (Python's own HTTP server; the OpenSearch-API server)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading

import pytest

from services import free_port

ENRICH = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*ENRICH, *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                               "PATH": "/usr/bin:/bin"})


def error_lines(stderr: str) -> list[str]:
    """stderr without the start-up line ``enrich run`` prints before it begins."""
    return [line for line in stderr.splitlines() if not line.startswith("enrich: kafka ")
            and not line.startswith("enrich: 1 input(s)")]


def test_kafka_broker_unreachable_is_one_line_without_librdkafka_logs(tmp_path):
    port = free_port()  # nothing listens there
    result = run_cli("run", "--source", "kafka", "--kafka-bootstrap", f"127.0.0.1:{port}",
                     "--kafka-topic", "docs", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"enrich: error: cannot reach Kafka at 127.0.0.1:{port} for topic(s) docs: ")
    assert "Connection refused" in line and "check --kafka-bootstrap" in line
    assert not (tmp_path / "out").exists()


@pytest.fixture
def plain_http_server():
    """Python's own file server: answers HEAD/GET, 501 to anything else, HTML bodies."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("target", ["plain_http_server", "opensearch_url"])
def test_elasticsearch_sink_pointed_at_something_that_is_not_elasticsearch_is_one_line(target, request, tmp_path):
    url = request.getfixturevalue(target)
    result = run_cli("run", "--sink", "elasticsearch", "--es-url", url, "--index", "docs",
                     "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"enrich: error: elasticsearch {url} index 'docs' ")
    assert "not answer as Elasticsearch does" in line and "--es-url" in line


@pytest.mark.parametrize("where", ["local", "http"])
def test_an_input_that_matches_no_file_is_one_line_and_a_usage_error(where, tmp_path):
    # FileNotFoundError is an OSError: the handler for stdout's write errors caught it first and
    # re-raised it, so a mistyped --input printed a traceback and exited 1.
    missing = str(tmp_path / "no-such.jsonl") if where == "local" else f"http://127.0.0.1:{free_port()}/no-such.jsonl"
    result = run_cli("run", "--input", missing, "--output", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [f"enrich: error: no input files match '{missing}'"]
    assert not (tmp_path / "out").exists()
