"""Admission control: a bound on the texts each model holds, beyond which requests get 429.

As TEI's ``max_concurrent_requests``: a server that queues without bound answers a flood by
answering everyone late (and, in the end, by running out of memory); one that refuses early
lets clients back off and keeps its latency for the requests it took. The bound counts the
texts a model has been given and not yet answered (queued, being tokenised or embedded).
Each text is cut to what the model can see before it is tokenised, so the bound on texts is
also one on tokens (texts x the model's max_sequence_length).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from inference_enrich.server.errors import ApiError

RETRY_AFTER_S = 1
"""What a refused client is told to wait (seconds): a few forward passes' time here."""


class Overloaded(ApiError):
    """Elasticsearch's answer when a queue is full: 429 ``es_rejected_execution_exception``."""

    def __init__(self, model: str, held: int, wanted: int, limit: int) -> None:
        super().__init__(
            429, "es_rejected_execution_exception",
            f"rejected execution of inference on [{model}]: it holds [{held}] texts and this request "
            f"brings [{wanted}], the limit is [{limit}] (--max-queued-texts); retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)})


class Admission:
    """Texts in flight per model (thread-safe: released from model and remote threads)."""

    def __init__(self, max_texts: int) -> None:
        if max_texts < 1:
            raise ValueError("--max-queued-texts must be at least 1")
        self.max_texts = max_texts
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, label: str, texts: int) -> None:
        """Count ``texts`` against ``key``'s bound or raise ``Overloaded``. A request larger
        than the whole bound is admitted when the model holds nothing, so no request that
        passed --max-inputs is refused for ever."""
        with self._lock:
            held = self._held.get(key, 0)
            if held and held + texts > self.max_texts:
                raise Overloaded(label, held, texts, self.max_texts)
            self._held[key] = held + texts

    def release_when_done(self, key: str, texts: int, future: Future) -> None:
        """Give ``texts`` back once ``future`` is answered, failed or withdrawn."""
        future.add_done_callback(lambda _: self.release_now(key, texts))

    def release_now(self, key: str, texts: int) -> None:
        with self._lock:
            held = self._held.get(key, 0) - texts
            if held > 0:
                self._held[key] = held
            else:
                self._held.pop(key, None)
