"""Turn what a format reader yields into the read step's outputs, counted the same way
whether a file is read whole (``read_whole_file``) or in byte ranges (``line_ranges``).

What goes wrong while reading ends in one of two places. Bad data (an unparseable record,
undecodable bytes, corrupt compression) is a dead letter: per record, or, where the reader
cannot go on, one ``read`` letter for the rest, counted in ``files_cut_short``. A transient
I/O error is retried where it happened (``resumable_reads``) and, if it persists, fails the
bundle: the runner retries it or the job fails, and no record of a readable file goes missing.
"""

from __future__ import annotations

import logging
from typing import Iterator

from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from inference_enrich.transforms.documents import (
    DEAD_LETTER_TAG, PARSE, Document, RecordFields, dead_letter, document_or_dead_letter,
)
from inference_enrich.transforms.formats import READERS, SourceItem, compression_of, format_of
from inference_enrich.transforms.metrics import METRICS_NAMESPACE
from inference_enrich.transforms.resumable_reads import RetryPolicy, TransientReadError, open_resumable

LOG = logging.getLogger(__name__)
READ = "read"
"""Dead-letter stage of a file's unreadable remainder: one letter stands for every record
after ``line`` (or from ``offset``), and the file is counted in the ``files_cut_short`` metric."""


class RecordOutputs:
    """The read step's counters, and each ``SourceItem`` as a document or a dead letter."""

    def __init__(self, fields: RecordFields) -> None:
        self.fields = fields
        self._records = Metrics.counter(METRICS_NAMESPACE, "records_read")
        self._parse_errors = Metrics.counter(METRICS_NAMESPACE, "parse_errors")
        self._invalid = Metrics.counter(METRICS_NAMESPACE, "invalid_records")
        self._blank = Metrics.counter(METRICS_NAMESPACE, "blank_lines_skipped")
        self.files = Metrics.counter(METRICS_NAMESPACE, "files_read")
        self._cut_short = Metrics.counter(METRICS_NAMESPACE, "files_cut_short")

    def of_item(self, item: SourceItem, url: str, offset: int | None = None) -> Iterator[Document | TaggedOutput]:
        """``item`` as a document, a dead letter, or nothing (a blank text line)."""
        if item.blank:
            self._blank.inc()
            return
        self._records.inc()
        if item.error is not None:
            self._parse_errors.inc()
            if item.rest_unread:
                LOG.warning("cannot read %s past line %s: %s", url, item.line, item.error)
                self._cut_short.inc()
            yield TaggedOutput(DEAD_LETTER_TAG, dead_letter(
                READ if item.rest_unread else PARSE, item.error, url, raw=item.raw, line=item.line, offset=offset))
            return
        element = document_or_dead_letter(item.value, self.fields, url, item.line, offset)
        if isinstance(element, Document):
            yield element
        else:
            self._invalid.inc()
            yield TaggedOutput(DEAD_LETTER_TAG, element)

    def rest_unreadable(self, url: str, where: str, error: Exception, *, line: int | None = None,
                        offset: int | None = None) -> TaggedOutput:
        """One ``read`` dead letter for what could not be read after ``where``."""
        LOG.warning("cannot read the rest of %s after %s: %s", url, where, error)
        self._records.inc()
        self._parse_errors.inc()
        self._cut_short.inc()
        return TaggedOutput(DEAD_LETTER_TAG, dead_letter(
            READ, f"cannot read the rest of the file after {where}: {type(error).__name__}: {error}",
            url, line=line, offset=offset))


def read_whole_file(url: str, file_format: str | None, outputs: RecordOutputs,
                    retry: RetryPolicy) -> Iterator[Document | TaggedOutput]:
    """Stream one file's records, from its first byte to its last."""
    file_format = file_format or format_of(url)
    compression = None if file_format == "parquet" else compression_of(url)
    last_line = 0
    try:
        with open_resumable(url, compression, retry) as stream:
            for item in READERS[file_format](stream, outputs.fields.text_field):
                last_line = item.line or last_line
                yield from outputs.of_item(item, url)
    except TransientReadError as error:  # retried in place already: now the runner's turn
        raise TransientReadError(f"{error} (records up to line {last_line} were read)") from error
    except Exception as error:  # a corrupt file must not fail the job or vanish
        yield outputs.rest_unreadable(url, f"line {last_line}", error, line=last_line + 1)
    outputs.files.inc()
