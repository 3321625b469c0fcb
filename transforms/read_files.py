"""Read documents from files: any fsspec URL or glob, five formats, compressed or not.

``ReadDocuments`` splits "which files" from "read a file", as Beam's ``MatchAll ->
ReadMatches`` does. The job graph holds only the patterns: they are matched when the pipeline
runs (``match_files``), so its size does not depend on the number of files, and a launch-time
check that stops at the first match still makes a typo fail at once. Uncompressed JSON Lines
and plain-text files are then cut into byte ranges that any worker can read
(``line_ranges``); every other file is read whole by one worker. After a Reshuffle, ranges
and whole files are read in parallel by all workers. How read errors end (dead letters,
retries): ``file_records``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from inference_enrich.transforms.documents import DEAD_LETTER_TAG, Document, RecordFields
from inference_enrich.transforms.file_records import READ, RecordOutputs, read_whole_file
from inference_enrich.transforms.formats import READERS
from inference_enrich.transforms.line_ranges import DEFAULT_SPLIT_BYTES, ReadRanges, plan_ranges
from inference_enrich.transforms.match_files import MatchedFile, MatchFiles, require_matches
from inference_enrich.transforms.resumable_reads import RetryPolicy
from inference_enrich.transforms.runner_support import supports_splittable_dofns

__all__ = ["READ", "ReadDocuments", "ReadFileRecords"]


class ReadFileRecords(beam.DoFn):
    """Stream one whole file's records: documents on the main output, the rest as dead
    letters (the reading for runners without splittable DoFns)."""

    def __init__(self, file_format: str | None, fields: RecordFields, retry: RetryPolicy = RetryPolicy()) -> None:
        self._format = file_format
        self._fields = fields
        self._retry = retry

    def setup(self) -> None:
        self._outputs = RecordOutputs(self._fields)

    def process(self, file: MatchedFile) -> Iterator[Document | TaggedOutput]:
        yield from read_whole_file(file.url, self._format, self._outputs, self._retry)


class ReadDocuments(beam.PTransform):
    """Files -> ``Document`` elements (main output) and dead letters (``DEAD_LETTER_TAG``).

    ``splittable_reads=False`` reads every file whole, without a splittable DoFn (for runners
    that have none; chosen for you where ``runner_support`` says the runner cannot run them);
    ``split_bytes`` is the size of the byte ranges a large JSON Lines or text file is cut
    into otherwise.
    """

    def __init__(
        self,
        patterns: Sequence[str],
        file_format: str | None = None,
        fields: RecordFields = RecordFields(),
        retry: RetryPolicy = RetryPolicy(),
        splittable_reads: bool = True,
        split_bytes: int = DEFAULT_SPLIT_BYTES,
        match: bool = True,
    ) -> None:
        """``match=False`` skips the launch-time check that each pattern matches a file, so
        nothing lists storage while the pipeline is built (a dry run builds the job offline);
        files are matched when the job runs either way, so the graph is the same."""
        super().__init__()
        if file_format is not None and file_format not in READERS:
            raise ValueError(f"unknown format '{file_format}' (known: {', '.join(READERS)})")
        if split_bytes < 1:
            raise ValueError(f"split_bytes must be at least 1, got {split_bytes}")
        self._patterns = list(patterns)
        if match:
            require_matches(self._patterns)
        self._format = file_format
        self._fields = fields
        self._retry = retry
        self._splittable = splittable_reads
        self._split_bytes = split_bytes

    def expand(self, pbegin):
        files = (
            pbegin
            # One element (see MatchFiles), typed so that its coder is exact, not pickled.
            | "InputPatterns" >> beam.Create([tuple(self._patterns)]).with_output_types(tuple[str, ...])
            | "MatchFiles" >> beam.ParDo(MatchFiles())
        )
        if not self._splittable or not supports_splittable_dofns(pbegin.pipeline):
            return (
                files
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadRecords" >> beam.ParDo(ReadFileRecords(self._format, self._fields, self._retry))
                .with_outputs(DEAD_LETTER_TAG, main="documents")
            )
        return (
            files
            | "PlanRanges" >> beam.FlatMap(plan_ranges, self._format, self._split_bytes)
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRecords" >> beam.ParDo(ReadRanges(self._format, self._fields, self._retry))
            .with_outputs(DEAD_LETTER_TAG, main="documents")
        )
