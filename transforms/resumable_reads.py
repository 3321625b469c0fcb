"""Read a file through transient I/O errors: retry with backoff, resume at the byte reached.

Corrupt data is the format readers' business (a dead letter). A dropped connection, a
timeout or a 5xx answer from object storage is not: the same bytes will be there on the next
try, and dead-lettering "the rest of the file" would turn a network blip into data loss.
``open_resumable`` returns a binary stream that, when a read fails transiently, reopens the
file and continues at the byte offset it had delivered (a seek, or a skip for streams that
cannot seek), so the decompressors and parsers above it never notice: no byte twice, none
missing. After ``RetryPolicy.attempts`` failures in a row it raises ``TransientReadError``,
naming the file and the offset, so the bundle fails: the runner retries it, or the job fails
loudly.
"""

from __future__ import annotations

import http.client
import io
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, TypeVar

import fsspec
from fsspec.compression import compr

LOG = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # reset, refused, aborted, broken pipe
    TimeoutError,  # also asyncio's and fsspec's FSTimeoutError
    http.client.IncompleteRead,
)
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
SKIP_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient read error is retried (per point of failure:
    the count starts again once reading makes progress)."""

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, failures: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** (failures - 1))


class TransientReadError(Exception):
    """A file could not be read past a byte offset although its data may well be fine."""


def _http_client_transient_errors() -> tuple[type[BaseException], ...]:
    """aiohttp's transient errors, once something (fsspec's http filesystem) has imported it:
    before that none of its errors can exist, and importing it only to compare against cost
    every job on local files ~0.1 s of start-up."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return ()
    return (
        aiohttp.ClientPayloadError,  # the body ended before its Content-Length
        aiohttp.ClientConnectionError,  # disconnected, OS-level socket errors
    )


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a network or service hiccup
    that a retry can cure, rather than corrupt or missing data."""
    seen: set[int] = set()
    transient_types = TRANSIENT_ERRORS + _http_client_transient_errors()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, transient_types):
            return True
        status = getattr(current, "status", None) or getattr(current, "code", None)
        if isinstance(status, int) and status in RETRYABLE_STATUSES:
            return True  # aiohttp's ClientResponseError.status, gcsfs' HttpError.code
        current = current.__cause__ or current.__context__
    return False


class ResumableStream(io.RawIOBase):
    """A raw binary stream over ``open_file()`` that survives transient errors (see module)."""

    def __init__(self, open_file: Callable[[], BinaryIO], url: str, policy: RetryPolicy) -> None:
        super().__init__()
        self._open_file = open_file
        self._url = url
        self._policy = policy
        self._file: BinaryIO | None = None
        self._offset = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._call(lambda file: file.seekable())

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._offset = self._call(lambda file: file.seek(offset, whence))
        return self._offset

    def readinto(self, buffer) -> int:
        # typing.BinaryIO declares no readinto; every file fsspec opens has it.
        count = self._call(lambda file: file.readinto(buffer))  # type: ignore[attr-defined]
        self._offset += count
        return count

    def close(self) -> None:
        self._discard_file()
        super().close()

    def _call(self, operation: Callable[[BinaryIO], T]) -> T:
        failures = 0
        while True:
            try:
                if self._file is None:
                    self._file = self._open_at(self._offset)
                return operation(self._file)
            except Exception as error:
                if not is_transient(error):
                    raise
                failures += 1
                self._discard_file()
                if failures >= self._policy.attempts:
                    raise TransientReadError(
                        f"cannot read {self._url} past byte {self._offset}: gave up after "
                        f"{failures} attempts, the last failed with {type(error).__name__}: {error}"
                    ) from error
                delay = self._policy.delay(failures)
                LOG.warning("reading %s at byte %d failed (%s: %s); retrying in %.1f s",
                            self._url, self._offset, type(error).__name__, error, delay)
                time.sleep(delay)

    def _open_at(self, offset: int) -> BinaryIO:
        file = self._open_file()
        if offset == 0:
            return file
        if file.seekable():
            file.seek(offset)
            return file
        _skip(file, offset)  # a stream that cannot seek: read up to where we were
        return file

    def _discard_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except Exception as error:  # a broken connection may fail to close: it is dropped anyway
                LOG.debug("closing %s after an error: %s", self._url, error)


def _skip(file: BinaryIO, count: int) -> None:
    while count > 0:
        chunk = file.read(min(count, SKIP_CHUNK_BYTES))
        if not chunk:
            raise EOFError(f"the file ended {count} bytes before the offset already read")
        count -= len(chunk)


@contextmanager
def open_resumable(url: str, compression: str | None, policy: RetryPolicy = RetryPolicy()) -> Iterator[BinaryIO]:
    """``url`` opened for reading through a ``ResumableStream``, decompressed by
    ``compression`` (an fsspec codec name) when given."""
    fs, path = fsspec.core.url_to_fs(url)
    with io.BufferedReader(ResumableStream(lambda: fs.open(path, "rb"), url, policy),
                           buffer_size=1 << 16) as stream:
        if not compression:
            yield stream
            return
        with compr[compression](stream, mode="rb") as decompressed:
            yield decompressed
