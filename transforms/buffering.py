"""``BufferingDoFn``: hold elements and process them together, keeping each one's window.

DoFns that work on many elements at once (a forward pass, a bulk request) buffer their
input. Beam requires every output to keep its input's window and timestamp, and
``finish_bundle`` may only emit ``WindowedValue``s, so each element is held with both and
flushed when the buffer is full and at the end of every bundle (nothing is held across
bundles: the runner commits a bundle's output only once it has finished).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, NamedTuple

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import BoundedWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue


class BufferedElement(NamedTuple):
    """An input element with the window and timestamp its outputs must keep."""

    element: Any
    window: BoundedWindow
    timestamp: Timestamp

    def output(self, value: Any) -> WindowedValue:
        """``value`` as an output of this element (same window and timestamp)."""
        return WindowedValue(value, self.timestamp, (self.window,))

    def tagged_output(self, tag: str, value: Any) -> TaggedOutput:
        """``value`` on the output ``tag``, as an output of this element."""
        return TaggedOutput(tag, self.output(value))


class BufferingDoFn(beam.DoFn):
    """Buffers up to ``capacity`` elements, then hands them to ``flush``; subclasses
    implement ``flush`` and emit with ``BufferedElement.output`` / ``tagged_output``."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._buffer: list[BufferedElement] = []

    def flush(self, entries: list[BufferedElement]) -> Iterable[WindowedValue | TaggedOutput]:
        """Process ``entries`` (never empty) and yield their outputs."""
        raise NotImplementedError

    def start_bundle(self) -> None:
        self._buffer = []

    def process(
        self, element: Any, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam
    ) -> Iterator[WindowedValue | TaggedOutput]:
        self._buffer.append(BufferedElement(element, window, timestamp))
        if len(self._buffer) >= self._capacity:
            yield from self._drain()

    def finish_bundle(self) -> Iterator[WindowedValue | TaggedOutput]:
        yield from self._drain()

    def _drain(self) -> Iterator[WindowedValue | TaggedOutput]:
        entries, self._buffer = self._buffer, []
        if entries:
            yield from self.flush(entries)
