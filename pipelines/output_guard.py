"""Before a run writes anything: may it use its output directory, and is it the only run
doing so?

Save modes (``--mode``, ``sink.mode``), as Spark users know them:

- ``error-if-exists``: refuse an output directory that holds anything;
- ``overwrite``: publishing replaces the files earlier enrich runs published there (those
  ``_SUCCESS`` lists); any other file is left alone;
- ``append``: publishing adds this run's files to them.

Without a mode, a directory that is absent, empty or an enrich output (it has our
``_SUCCESS``, a JSON file; Spark's is empty) is overwritten by a run from files and appended
to by a run from Kafka (each Kafka run reads only newer messages); any other non-empty
directory is refused, so that a wrong ``--output`` never mixes our files into someone else's.

One run at a time per output directory: ``OutputLock`` holds ``OUTPUT/.enrich-lock.json``
(run id, host, pid, heartbeat) for the run. A second run is refused at start. A lock whose
holder is gone (its process on this host is dead, or its heartbeat is older than its lease)
is taken over, and the staging directories of runs that no longer hold the lock (killed or
failed runs) are removed then, after finishing the publish of a run killed while publishing
(its plan is in its staging); a live run's staging never is. A detached job's launcher that
stops waiting leaves the lock to the job (``OutputLock.abandon``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

from inference_enrich.inference.errors import InferenceEnrichError
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.transforms.bundle_files import STAGING_PREFIX, RunFiles
from inference_enrich.transforms.publishing.output_dir import (
    LOCK, PUBLISH_PLAN, SUCCESS, entries, read_lock, success_marker,
)
from inference_enrich.transforms.publishing.publish import publish_output, release_lock
from inference_enrich.transforms.runner_support import runs_in_process

LOG = logging.getLogger(__name__)
HEARTBEAT_S = 30.0
LEASE_S = 300.0
"""A lock not refreshed for this long belongs to a run that is gone."""
DETACHED_LEASE_S = 24 * 3600.0
"""The lease of a run that publishes itself (``publish: pipeline``) on a runner outside this
process: its launcher may stop waiting (a Flex Template's does) while the job runs on, so
only the job's own publish step, or this long a silence, ends it."""


class OutputRefused(InferenceEnrichError):
    """The output directory may not be used as asked (a usage error, exit status 2)."""


def replaces_output(job: JobConfig) -> bool:
    """Whether publishing replaces the earlier enrich output (else it adds to it)."""
    if job.mode is not None:
        return job.mode != "append"
    return job.source == "files"


def lock_lease(job: JobConfig, runner: str | None) -> float:
    """``DETACHED_LEASE_S`` for a job that publishes itself on a runner outside this process,
    else ``LEASE_S`` (the launcher's heartbeat, or its death, tells)."""
    return DETACHED_LEASE_S if job.publish == "pipeline" and not runs_in_process(runner) else LEASE_S


def check_save_mode(job: JobConfig) -> None:
    """Refuse an output directory the save mode does not allow (see module docstring)."""
    fs, output = fsspec.core.url_to_fs(job.output.rstrip("/"))
    if fs.exists(output) and not fs.isdir(output):
        raise OutputRefused(f"output {job.output} is a file, not a directory: choose a directory for --output")
    if fs.isdir(f"{output}/{SUCCESS}"):
        raise OutputRefused(f"output directory {job.output}: its _SUCCESS is a directory, where enrich writes "
                            "its completion marker; choose another --output")
    content = [name for name in entries(fs, output) if not name.startswith((STAGING_PREFIX, LOCK))]
    if not content or job.mode in ("overwrite", "append"):
        return
    if job.mode == "error-if-exists":
        raise OutputRefused(f"output directory {job.output} is not empty (--mode error-if-exists); "
                            "choose another --output, or --mode overwrite or --mode append")
    if "run_id" not in success_marker(fs, output):  # no _SUCCESS, or not ours (Spark's is empty)
        raise OutputRefused(
            f"output directory {job.output} is not empty and is not the output of an earlier enrich "
            "run; choose another --output, or --mode overwrite (replace earlier enrich output there) or "
            "--mode append (both keep files enrich did not write)")


class OutputLock:
    """The lock file of one run on its output directory (see module docstring)."""

    def __init__(self, output: str, run_id: str, lease_s: float = LEASE_S) -> None:
        self._fs, self._output = fsspec.core.url_to_fs(output.rstrip("/"))
        self._path = f"{self._output}/{LOCK}"
        self._url = output.rstrip("/")
        self._display = f"{self._url}/{LOCK}"
        self._run_id = run_id
        self._lease_s = lease_s
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._made_output = False

    def acquire(self) -> "OutputLock":
        """Take the lock, or raise ``OutputRefused`` naming the run that holds it."""
        self._made_output = not self._fs.exists(self._output)
        self._fs.makedirs(self._output, exist_ok=True)
        for _ in range(3):
            if self._create():
                break
            holder = self._read()
            if holder is not None and not _is_stale(holder):
                raise OutputRefused(
                    f"output directory {self._output} is being written by another enrich run "
                    f"({holder.get('run_id')}, host {holder.get('host')}, pid {holder.get('pid')}, "
                    f"since {holder.get('started')}); wait for it, or remove {self._display} if that "
                    "run is no longer running")
            self._remove_lock(holder)
        else:
            raise OutputRefused(f"could not take the lock {self._display}: other runs keep taking it")
        self._remove_dead_staging()
        self._heartbeat = threading.Thread(target=self._beat, name="enrich-output-lock", daemon=True)
        self._heartbeat.start()
        return self

    def release(self) -> None:
        """Release the lock; an output directory the lock itself created and nothing was
        written to (the run failed before any output) is removed again."""
        self.abandon()
        release_lock(self._fs, self._output, self._run_id)
        if self._made_output and self._fs.isdir(self._output) and not self._fs.ls(self._output):
            self._fs.rmdir(self._output)

    def abandon(self) -> None:
        """Stop renewing the lock but leave it: for a detached job that may still be running
        and will release it when it publishes (its lease, ``DETACHED_LEASE_S``, ends it else)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()

    def _content(self) -> bytes:
        return json.dumps({"run_id": self._run_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "heartbeat": time.time(), "lease_s": self._lease_s}).encode()

    def _create(self) -> bool:
        """Create the lock file if there is none (atomically on a local disk)."""
        if isinstance(self._fs, LocalFileSystem):
            try:
                descriptor = os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(self._content())
            return True
        if self._fs.exists(self._path):  # object stores: best effort, checked by reading back
            return False
        self._fs.pipe_file(self._path, self._content())
        holder = self._read()
        return holder is not None and holder.get("run_id") == self._run_id

    def _read(self) -> dict | None:
        return read_lock(self._fs, self._output)

    def _remove_lock(self, holder: dict | None) -> None:
        """Remove a stale (or unreadable) lock, unless another run replaced it meanwhile."""
        current = self._read()
        if current is None or holder is None or current.get("run_id") == holder.get("run_id"):
            try:
                self._fs.rm(self._path)
            except FileNotFoundError:
                pass

    def _remove_dead_staging(self) -> None:
        """Staging of runs that do not hold the lock: it is ours now, so they are gone. A run
        that had begun publishing (its plan, ``_publish.json``, is in its staging) succeeded
        and was killed midway: its publish is finished first, by the same idempotent
        ``publish_output``, so that no half-published run is left behind."""
        for name in entries(self._fs, self._output):
            if not name.startswith(STAGING_PREFIX) or name == f"{STAGING_PREFIX}{self._run_id}":
                continue
            path = f"{self._output}/{name}"
            if self._fs.exists(f"{path}/{PUBLISH_PLAN}"):
                self._finish_publish(name[len(STAGING_PREFIX):])
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)

    def _finish_publish(self, run_id: str) -> None:
        try:
            count = publish_output(RunFiles(self._url, run_id), replace=False)  # the plan decides
        except Exception as error:
            raise OutputRefused(
                f"run {run_id} was killed while publishing into {self._url} and its publish could not "
                f"be finished ({type(error).__name__}: {error}); inspect {self._url}/{STAGING_PREFIX}{run_id}"
            ) from error
        LOG.warning("finished publishing %d file(s) of run %s, which was killed while publishing",
                    count, run_id)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            holder = self._read()
            if holder is None or holder.get("run_id") != self._run_id:
                return  # released by the pipeline's publish step
            holder["heartbeat"] = time.time()
            temporary = f"{self._path}.{uuid.uuid4().hex}"
            try:
                self._fs.pipe_file(temporary, json.dumps(holder).encode())
                self._fs.mv(temporary, self._path)
            except OSError as error:  # the next beat tries again; the lease allows for it
                LOG.warning("could not renew the lock %s: %s", self._display, error)


def _is_stale(holder: dict) -> bool:
    if time.time() - float(holder.get("heartbeat", 0)) > float(holder.get("lease_s", LEASE_S)):
        return True
    if float(holder.get("lease_s", LEASE_S)) > LEASE_S:  # detached: the job may outlive its launcher
        return False
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
