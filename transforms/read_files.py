"""Read documents from files: any fsspec URL or glob, five formats, compressed or not.

``ReadDocuments`` splits "which files" (expanded when the pipeline is built, so a typo in a
path fails at once) from "read a file" (a DoFn, after a Reshuffle so that files are read in
parallel by all workers), as Beam's ``MatchFiles -> ReadMatches`` does.

What goes wrong while reading a file ends in one of two places. Bad data (an unparseable
record, undecodable bytes, corrupt compression) is a dead letter: per record, or, where the
reader cannot go on, one ``read`` letter for the rest of the file, counted in
``files_cut_short``. A transient I/O error (a dropped connection, a timeout, a 5xx) is retried
where it happened (``resumable_reads``) and, if it persists, fails the bundle: the runner
retries it or the job fails, and no record of a readable file goes missing.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import apache_beam as beam
import fsspec
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from inference_enrich.transforms.documents import (
    DEAD_LETTER_TAG,
    PARSE,
    VALIDATE,
    Document,
    InvalidRecord,
    RecordFields,
    dead_letter,
    to_document,
)
from inference_enrich.transforms.formats import READERS, compression_of, format_of
from inference_enrich.transforms.resumable_reads import RetryPolicy, TransientReadError, open_resumable

LOG = logging.getLogger(__name__)
METRICS_NAMESPACE = "inference_enrich"
READ = "read"
"""Dead-letter stage of a file's unreadable remainder: one letter stands for every record
after ``line``, and the file is counted in the ``files_cut_short`` metric."""


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Every file URL matched by ``patterns`` (globs, files, or directories), sorted.

    A directory stands for the files under it with a known format extension. Raises
    ``FileNotFoundError`` naming the pattern that matched nothing.
    """
    urls: list[str] = []
    for pattern in patterns:
        fs, path = fsspec.core.url_to_fs(pattern)
        # A name with a format extension is a file: asking an http:// URL whether it is a
        # directory would download it to look for links.
        if not _known_format(path) and fs.isdir(path):
            found = [
                p
                for p in fs.find(path)
                if not _hidden(p[len(path) :]) and _known_format(p)
            ]
        else:
            found = [p for p in fs.glob(path) if fs.isfile(p)]
        if not found:
            raise FileNotFoundError(f"no input files match '{pattern}'")
        urls.extend(fs.unstrip_protocol(p) for p in sorted(found))
    return urls


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _known_format(path: str) -> bool:
    try:
        format_of(path)
    except ValueError:
        return False
    return True


class ReadFileRecords(beam.DoFn):
    """Stream one file's records: documents on the main output, the rest as dead letters."""

    def __init__(self, file_format: str | None, fields: RecordFields, retry: RetryPolicy = RetryPolicy()) -> None:
        if file_format is not None and file_format not in READERS:
            raise ValueError(f"unknown format '{file_format}' (known: {', '.join(READERS)})")
        self._format = file_format
        self._fields = fields
        self._retry = retry
        self._records = Metrics.counter(METRICS_NAMESPACE, "records_read")
        self._parse_errors = Metrics.counter(METRICS_NAMESPACE, "parse_errors")
        self._invalid = Metrics.counter(METRICS_NAMESPACE, "invalid_records")
        self._blank = Metrics.counter(METRICS_NAMESPACE, "blank_lines_skipped")
        self._files = Metrics.counter(METRICS_NAMESPACE, "files_read")
        self._cut_short = Metrics.counter(METRICS_NAMESPACE, "files_cut_short")

    def process(self, url: str) -> Iterator[Document | TaggedOutput]:
        file_format = self._format or format_of(url)
        compression = None if file_format == "parquet" else compression_of(url)
        last_line = 0
        try:
            with open_resumable(url, compression, self._retry) as stream:
                for item in READERS[file_format](stream, self._fields.text_field):
                    last_line = item.line or last_line
                    if item.blank:
                        self._blank.inc()
                        continue
                    self._records.inc()
                    if item.error is not None:
                        self._parse_errors.inc()
                        if item.rest_unread:
                            LOG.warning("cannot read %s past line %s: %s", url, item.line, item.error)
                            self._cut_short.inc()
                        yield TaggedOutput(
                            DEAD_LETTER_TAG,
                            dead_letter(READ if item.rest_unread else PARSE, item.error, url,
                                        raw=item.raw, line=item.line),
                        )
                        continue
                    try:
                        yield to_document(item.value, self._fields, url, item.line)
                    except InvalidRecord as error:
                        self._invalid.inc()
                        yield TaggedOutput(
                            DEAD_LETTER_TAG,
                            dead_letter(VALIDATE, str(error), url, record=item.value, line=item.line),
                        )
        except TransientReadError as error:  # retried in place already: now the runner's turn
            raise TransientReadError(f"{error} (records up to line {last_line} were read)") from error
        except Exception as error:  # a corrupt file must not fail the job or vanish
            LOG.warning("cannot read the rest of %s after line %d: %s", url, last_line, error)
            self._records.inc()
            self._parse_errors.inc()
            self._cut_short.inc()
            yield TaggedOutput(
                DEAD_LETTER_TAG,
                dead_letter(
                    READ,
                    f"cannot read the rest of the file after line {last_line}: "
                    f"{type(error).__name__}: {error}",
                    url,
                    line=last_line + 1,
                ),
            )
        self._files.inc()


class ReadDocuments(beam.PTransform):
    """Files -> ``Document`` elements (main output) and dead letters (``DEAD_LETTER_TAG``)."""

    def __init__(
        self,
        patterns: Sequence[str],
        file_format: str | None = None,
        fields: RecordFields = RecordFields(),
        retry: RetryPolicy = RetryPolicy(),
        match: bool = True,
    ) -> None:
        """``match=False`` takes the patterns as the file list without listing any storage
        (a dry run builds the job offline; the graph is the same)."""
        super().__init__()
        self._urls = expand_inputs(patterns) if match else list(patterns)
        self._reader = ReadFileRecords(file_format, fields, retry)

    def expand(self, pbegin):
        return (
            pbegin
            | "FileUrls" >> beam.Create(self._urls)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadRecords"
            >> beam.ParDo(self._reader).with_outputs(DEAD_LETTER_TAG, main="documents")
        )
