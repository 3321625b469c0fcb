"""The one namespace every Beam metric of the job is counted under.

Each step counts its own counters (records read, enriched, written, dead letters), and the
job summary (``pipelines/enrich.py``) reads back every counter in this namespace; one module
holds it so that no step imports another step only for the name, and ``StepMetrics``,
the steps' counters by name.
"""

from __future__ import annotations

from typing import Iterable

from apache_beam.metrics import Metrics

METRICS_NAMESPACE = "inference_enrich"


class StepMetrics:
    """A step's Beam counters and distributions, made once (in a DoFn's ``__init__``) and
    counted by their metric names: the name in the code is the name in the job summary, and
    a misspelt one fails (``KeyError``) instead of counting a metric nobody reads."""

    def __init__(self, counters: Iterable[str], distributions: Iterable[str] = ()) -> None:
        self._counters = {name: Metrics.counter(METRICS_NAMESPACE, name) for name in counters}
        self._distributions = {name: Metrics.distribution(METRICS_NAMESPACE, name) for name in distributions}

    def inc(self, name: str, n: int = 1) -> None:
        self._counters[name].inc(n)

    def update(self, name: str, value: int) -> None:
        self._distributions[name].update(value)
