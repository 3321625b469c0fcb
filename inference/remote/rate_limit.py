"""``rate_limit.requests_per_minute``, enforced in one process by reservations.

Requests are spaced evenly: the k-th request of a process starts no earlier than
``k * 60 / requests_per_minute`` seconds after the first, so no window of a minute holds
more than the limit and there is never a burst above it (Elasticsearch's token bucket may
burst; a remote that counts per second then answers 429 to us less often). A caller
reserves the next free start time under a lock and sleeps until then outside it, so every
thread of the process can share one limiter: each remote service has one per process
(held by its ``RemoteClient``, see ``http.client_for``), whichever DoFn instance or request
it serves.

The limit is per worker process: a job with N worker processes may send N times the limit.
Give each endpoint ``requests_per_minute / N`` to hold a global quota.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """At most ``requests_per_minute`` starts a minute, evenly spaced."""

    def __init__(self, requests_per_minute: int) -> None:
        if requests_per_minute < 1:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.requests_per_minute = requests_per_minute
        self._interval = 60.0 / requests_per_minute
        self._next_start = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next start time; the seconds to wait before starting (0: start now)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
            return start - now
