"""Read one big line-based file on many workers: byte ranges with exact line boundaries.

An uncompressed JSON Lines or plain-text file is cut into ranges of ``split_bytes`` when the
pipeline runs (``plan_ranges``), the ranges are spread over the workers, and each is read by
``ReadRanges``, a splittable DoFn whose ``OffsetRestrictionTracker`` lets a runner that
rebalances work (Dataflow) split a range again while it is being read. The rule is Beam's
``ReadFromText``'s: a range owns a line iff the line *starts* inside it, so the first line of
a range that does not start the file is skipped unless the byte before it is a newline, and
the last line it owns may run past its end. Every line start is claimed from the tracker
before it is read: each line is read exactly once, whatever the splits.

Everything else is read whole: compressed files (no codec here lets a reader start
mid-stream), CSV (a quoted field may hold a newline, and only a reader that started at the
first byte knows whether a newline is inside quotes), JSON arrays, Parquet, and files whose
size the filesystem does not report.

Records carry their line's byte ``offset``; ``line`` only where it is known, in the range that
starts the file (see ``documents``). A UTF-8 byte-order mark can only be at byte 0, so only
that range looks for it.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.core import RestrictionProvider

from inference_enrich.transforms.documents import Document, RecordFields
from inference_enrich.transforms.file_records import RecordOutputs, read_whole_file
from inference_enrich.transforms.formats import LINE_PARSERS, compression_of, first_line_without_bom, format_of
from inference_enrich.transforms.match_files import MatchedFile
from inference_enrich.transforms.resumable_reads import RetryPolicy, TransientReadError, open_resumable

DEFAULT_SPLIT_BYTES = 16 << 20
"""Bytes per planned range. Runners that do not split dynamically (Flink, Spark, Beam's
direct runners) balance only the planned ranges, so there should be many per worker: 16 MiB
cuts a 200 MB file into 12 and a 50 GB one into ~3,000 (a few hundred bytes of shuffle each);
a range's start-up (an open and a seek) is noise against reading 16 MiB."""


class FileRange(NamedTuple):
    """Bytes ``[start, stop)`` of ``url`` to read line by line, or (``whole``) the whole file."""

    url: str
    start: int
    stop: int
    whole: bool


def is_splittable(file_format: str, url: str, size: int | None) -> bool:
    """Whether a file can be read in byte ranges (see the module docstring)."""
    return file_format in LINE_PARSERS and compression_of(url) is None and bool(size)


def plan_ranges(file: MatchedFile, file_format: str | None, split_bytes: int) -> Iterator[FileRange]:
    """The ranges of ``split_bytes`` a matched file is read in (one whole range if it cannot
    be split)."""
    size = file.size
    if size is None or not is_splittable(file_format or format_of(file.url), file.url, size):
        yield FileRange(file.url, 0, 1, True)
        return
    for start in range(0, size, split_bytes):
        yield FileRange(file.url, start, min(start + split_bytes, size), False)


class _RangeRestrictions(RestrictionProvider):
    """A range's restriction is its own byte range; a whole file's is ``[0, 1)``: one claim."""

    def initial_restriction(self, element: FileRange) -> OffsetRange:
        return OffsetRange(element.start, element.stop)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: FileRange, restriction: OffsetRange) -> int:
        return restriction.size()


class ReadRanges(beam.DoFn):
    """A ``FileRange`` -> its documents (main output) and dead letters (``DEAD_LETTER_TAG``)."""

    def __init__(self, file_format: str | None, fields: RecordFields, retry: RetryPolicy) -> None:
        self._format = file_format
        self._fields = fields
        self._retry = retry

    def setup(self) -> None:
        self._outputs = RecordOutputs(self._fields)

    def process(
        self, element: FileRange, tracker=beam.DoFn.RestrictionParam(_RangeRestrictions())
    ) -> Iterator[Document | TaggedOutput]:
        if element.whole:
            if tracker.try_claim(0):
                yield from read_whole_file(element.url, self._format, self._outputs, self._retry)
            return
        file_format = self._format or format_of(element.url)
        yield from read_line_range(element.url, file_format, tracker, self._outputs, self._retry)


def read_line_range(url: str, file_format: str, tracker, outputs: RecordOutputs,
                    retry: RetryPolicy) -> Iterator[Document | TaggedOutput]:
    """The records of the lines that start in the tracker's range, each claimed before it is
    read (its start offset), so a split the runner makes meanwhile moves no line twice."""
    parse = LINE_PARSERS[file_format]
    start = tracker.current_restriction().start
    position = start
    line_number = 1 if start == 0 else None
    try:
        with open_resumable(url, None, retry) as stream:
            if start > 0:
                stream.seek(start - 1)
                if stream.read(1) != b"\n":  # a line that started in an earlier range
                    position += len(stream.readline())
            while tracker.try_claim(position):
                raw = stream.readline()
                if not raw:
                    break  # the file is shorter than when it was matched
                line: bytes | None = raw
                if position == 0:
                    outputs.metrics.inc("files_read")
                    line = first_line_without_bom(raw)
                if line is not None:
                    yield from outputs.of_item(parse(line_number, line, outputs.fields.text_field), url, position)
                position += len(raw)
                if line_number is not None:
                    line_number += 1
            else:
                return
    except TransientReadError as error:  # retried in place already: now the runner's turn
        raise TransientReadError(f"{error} (the lines before byte {position} were read)") from error
    except Exception as error:  # a file that cannot be read on must not fail the job or vanish
        yield outputs.rest_unreadable(url, f"byte {position}", error, offset=position)
    tracker.try_claim(tracker.current_restriction().stop)  # nothing more to read: done
