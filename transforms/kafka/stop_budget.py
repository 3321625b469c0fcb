"""When a streaming read ends: after ``stop_after_records`` records or ``stop_after_seconds``
(tests, demos, bounded catch-up jobs). Without either it reads until the job is cancelled."""

from __future__ import annotations

import threading
import time

from inference_enrich.transforms.kafka.settings import KafkaSettings


class StopBudget:
    """Record and time budget of a streaming read, shared by the partitions a worker process
    reads for one pipeline run (``run_id``): the count is kept per process, not per DoFn
    instance, because the runner may read the run's partitions on several instances and the
    limit is the run's."""

    _lock = threading.Lock()
    _records: dict[str, int] = {}

    def __init__(self, settings: KafkaSettings, run_id: str) -> None:
        self._run_id = run_id
        self._max_records = settings.stop_after_records
        self._deadline = time.monotonic() + settings.stop_after_seconds if settings.stop_after_seconds else None

    def count(self) -> None:
        with self._lock:
            self._records[self._run_id] = self._records.get(self._run_id, 0) + 1

    def reached(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return True
        return self._max_records is not None and self._records.get(self._run_id, 0) >= self._max_records
