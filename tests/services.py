"""Start the real search servers the tests use, on 127.0.0.1 only, and stop them after.

* Elasticsearch API: noida-db (reports 8.15.3), via its ``up`` / ``down`` commands, which
  manage the server binary themselves (a killed foreground wrapper would leave it running).
* OpenSearch API: osmem-server (reports 3.8.0), in memory, via its Python launcher.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

NOIDA = str(Path(sys.executable).parent / "noida-db")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            time.sleep(0.2)


@contextmanager
def elasticsearch_server(data_dir: Path) -> Iterator[str]:
    """noida-db serving only the Elasticsearch API; yields its URL."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    port = free_port()
    subprocess.run(
        [NOIDA, "up", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--only",
         "elasticsearch", "--elasticsearch-port", str(port)],
        check=True, capture_output=True, timeout=120,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url)
        yield url
    finally:
        subprocess.run([NOIDA, "down", "--data-dir", str(data_dir)], capture_output=True, timeout=120)


@contextmanager
def kafka_broker(data_dir: Path) -> Iterator[str]:
    """noida-db serving only the Kafka protocol; yields its bootstrap address."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    port = free_port()
    subprocess.run(
        [NOIDA, "up", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--only", "kafka",
         "--kafka-port", str(port)],
        check=True, capture_output=True, timeout=120,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + 60
        while True:
            try:
                AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield bootstrap
    finally:
        subprocess.run([NOIDA, "down", "--data-dir", str(data_dir)], capture_output=True, timeout=120)


@contextmanager
def opensearch_server() -> Iterator[str]:
    """osmem-server (in memory); yields its URL."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(addr=f"127.0.0.1:{free_port()}", japanese=False)
    try:
        yield server.url
    finally:
        server.close()
