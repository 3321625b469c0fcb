"""``Worker``: what ``ModelPool`` holds for an endpoint, local (``ModelWorker``) or remote
(``RemoteWorker``), so routes do not care where the model runs; and ``Outcome``, the answer
either gives a request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, Sequence, TypeVar

from inference_enrich.inference import Endpoint
from inference_enrich.inference.results import InferenceResult

RuntimeT = TypeVar("RuntimeT")


@dataclass(frozen=True)
class Outcome:
    """One request's answer: a result per input text, in order, and its token count."""

    results: list[InferenceResult]
    tokens: int


class Worker(ABC, Generic[RuntimeT]):
    """Answers one endpoint's requests with the runtime it creates on first use."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._runtime: RuntimeT | None = None

    @property
    def model_id(self) -> str:
        return self._endpoint.model_id

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    @abstractmethod
    def submit(self, texts: Sequence[str]) -> Future:
        """A future of the request's ``Outcome``, or of its first failure."""

    @abstractmethod
    def load(self) -> Future:
        """A future that is done when the model is ready to answer (or failed to be)."""

    @abstractmethod
    def close(self) -> None:
        """Stop taking requests; the ones already taken are answered."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for ``close`` to finish (nothing to wait for unless the worker has a thread)."""
