"""One model runtime per endpoint per worker process, however many DoFn instances and
threads the runner creates: loading a model per instance would multiply start-up time and
memory by the runner's parallelism. The runtime is safe to share between threads
(``SharedRuntime``)."""

from __future__ import annotations

import threading

from apache_beam.utils import shared

from inference_enrich.inference import Endpoint, load_runtime


class RuntimeHolder:
    """``Shared.acquire`` needs a weak-referenceable object; runtimes may not be."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.runtime = load_runtime(endpoint)


_SHARED_RUNTIMES: dict[str, shared.Shared] = {}
_SHARED_LOCK = threading.Lock()


def shared_runtime(endpoint: Endpoint) -> RuntimeHolder:
    """This process's one runtime for ``endpoint``, loaded by the first caller.

    One ``Shared`` handle per endpoint fingerprint for the whole process, not per DoFn: every
    instance (copies of one transform, or several transforms on one endpoint) gets the same
    model. ``Shared`` holds it weakly (and keeps only the object acquired last alive), so
    each instance keeps the holder itself: the model lives while any instance uses it."""
    fingerprint = endpoint.fingerprint()
    with _SHARED_LOCK:
        handle = _SHARED_RUNTIMES.setdefault(fingerprint, shared.Shared())
    return handle.acquire(lambda: RuntimeHolder(endpoint), tag=fingerprint)
