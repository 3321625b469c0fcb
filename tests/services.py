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
def noida_service(data_dir: Path, service: str) -> Iterator[int]:
    """noida-db serving only ``service`` from a fresh ``data_dir``; yields its port."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    port = free_port()
    subprocess.run(
        [NOIDA, "up", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--only", service,
         f"--{service}-port", str(port)],
        check=True, capture_output=True, timeout=120,
    )
    try:
        yield port
    finally:
        subprocess.run([NOIDA, "down", "--data-dir", str(data_dir)], capture_output=True, timeout=120)


@contextmanager
def elasticsearch_server(data_dir: Path) -> Iterator[str]:
    """noida-db serving only the Elasticsearch API; yields its URL."""
    with noida_service(data_dir, "elasticsearch") as port:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url)
        yield url


@contextmanager
def kafka_broker(data_dir: Path) -> Iterator[str]:
    """noida-db serving only the Kafka protocol; yields its bootstrap address."""
    from confluent_kafka.admin import AdminClient

    with noida_service(data_dir, "kafka") as port:
        bootstrap = f"127.0.0.1:{port}"
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


@contextmanager
def opensearch_server() -> Iterator[str]:
    """osmem-server (in memory); yields its URL."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(addr=f"127.0.0.1:{free_port()}", japanese=False)
    try:
        yield server.url
    finally:
        server.close()
