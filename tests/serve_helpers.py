"""Start ``enrich serve`` as users do (a real process on a free 127.0.0.1 port) and talk to it
over plain HTTP where the official clients would hide the wire (status, headers, envelope)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from services import free_port, wait_for_http

SERVE = [sys.executable, "-m", "inference_enrich.pipelines.cli", "serve"]


@dataclass
class ServerProcess:
    url: str
    endpoints: Path
    log: Path
    process: subprocess.Popen

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def enrich_server(work: Path, *args: str, env: dict[str, str] | None = None,
                  endpoints: Path | None = None, store: bool = False) -> Iterator[ServerProcess]:
    """``enrich serve`` with its endpoints file in ``work`` (unless given; with ``store``,
    the default endpoint store under ``$ENRICH_HOME``) and its log in
    ``work/serve-<port>.log``; stopped with SIGTERM on exit."""
    port = free_port()
    environment = {**os.environ, **(env or {})}
    if store:
        endpoints = Path(environment["ENRICH_HOME"]) / "endpoints.yaml"
    endpoints = endpoints or work / "endpoints.yaml"
    where = [] if store else ["--endpoints", str(endpoints)]
    log = work / f"serve-{port}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*SERVE, "--port", str(port), *where, *args],
            stdout=log_file, stderr=subprocess.STDOUT, env=environment,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", endpoints, log, process)
    try:
        wait_for_http(f"{server.url}/_health", timeout=300)
        yield server
    finally:
        server.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: object


def http(method: str, url: str, body: object = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None, timeout: float = 120) -> Answer:
    """One request; any status is an answer (no exception), the body parsed as JSON if it is."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, answer_headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, payload = error.code, error.headers, error.read()
    try:
        parsed: object = json.loads(payload)
    except ValueError:
        parsed = payload.decode("utf-8", "replace")
    return Answer(status, {k.lower(): v for k, v in answer_headers.items()}, parsed)
