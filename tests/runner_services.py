"""Start the separate processes that cluster-like Beam runners need, on 127.0.0.1 only, and
stop them (and every process they started) after.

* A Beam worker pool (``worker_pool_main``): how Flink and Spark run Python SDK workers;
  ``PortableRunner --environment_type EXTERNAL`` points at it.
* A ``dask.distributed`` scheduler and two worker processes, for Beam's Dask runner.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from services import free_port

BIN = Path(sys.executable).parent
# The worker pool starts each SDK worker as `python -c ...`: this interpreter first on PATH.
QUIET_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
             "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port``; fails at once if
    ``process`` exited instead."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before "
                               f"listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listened on port {port} within {timeout} s")
            time.sleep(0.2)


@contextmanager
def process_group(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """``args`` in a new session (so its children share its process group), output to
    ``log``; the whole group is terminated (then killed) on the way out."""
    with open(log, "wb") as stream:
        process = subprocess.Popen(args, stdout=stream, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=QUIET_ENV)
        try:
            yield process
        finally:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                    # the leader is gone; its children may not be: kill what is left of the group
                    os.killpg(process.pid, signal.SIGKILL)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    continue
                break


@contextmanager
def beam_worker_pool(log_dir: Path) -> Iterator[int]:
    """A Beam SDK worker pool; yields its port (``--environment_config 127.0.0.1:PORT``)."""
    port = free_port()
    args = [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
            "--service_port", str(port)]
    with process_group(args, log_dir / "worker_pool.log") as process:
        wait_for_port(port, process)
        yield port


@contextmanager
def dask_cluster(log_dir: Path, workers: int = 2) -> Iterator[str]:
    """A ``dask.distributed`` scheduler and ``workers`` worker processes (one thread each);
    yields the scheduler's address (``--dask_client_address``) once all workers joined."""
    from distributed import Client

    port = free_port()
    address = f"127.0.0.1:{port}"
    with ExitStack() as stack:
        scheduler = stack.enter_context(process_group(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", "127.0.0.1:0", "--no-show"], log_dir / "dask_scheduler.log"))
        wait_for_port(port, scheduler)
        stack.enter_context(process_group(
            [str(BIN / "dask"), "worker", f"tcp://{address}", "--nworkers", str(workers),
             "--nthreads", "1", "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0",
             "--no-nanny" if workers == 1 else "--nanny"], log_dir / "dask_workers.log"))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
