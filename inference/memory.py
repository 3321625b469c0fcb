"""Keep a long-running worker's memory flat.

Inference allocates and frees many multi-megabyte tensors of varying shapes (batches are
length-sorted, so each batch of a buffer is bigger than the last). glibc serves them from
its heap, and the heap fragments around the small long-lived objects allocated in between
(result dicts, strings): measured on 3,000 documents, live heap data stayed at ~210 MB
while free-but-resident heap grew by 50-100 MB per forward pass, to ~500 MB within a buffer
of 1,024 documents. Returned to the OS only at exit, that made RSS grow with the corpus
(0.5 -> 1.3 GB over 6,000 documents).

``HeapTrimmer`` returns free heap pages to the OS (``malloc_trim``) after each buffer and
whenever resident memory has grown by ``slack_bytes`` since the last trim. Measured
alternatives, 5,000 documents (bench/RESULTS.md): trimming only per buffer, 1.33 GB peak;
this, 1.04 GB at ~2.5% of the throughput; pinning glibc's mmap threshold at 256 KiB (every
tensor its own mapping), 0.79 GB but 12% slower (each mapping is page-faulted afresh).

That last cost is also glibc's default for the biggest tensors: anything over its (adaptive,
at most 32 MB) mmap threshold gets a fresh mapping, faulted in page by page at every use. An
8,192-token batch of MiniLM makes 48 MB activations eleven times per layer; the dense job took
4-5 M page faults and 9-10 s of kernel time for 3,000 documents, ~12% of its wall time
(bench/RESULTS.md, speed round 5). So a trimmer also raises both thresholds
(``hold_large_buffers_on_heap``): big buffers come from the heap and are reused as they are,
and free memory goes back to the OS only when the trimmer trims. Measured: kernel time
10 s -> 1.5 s, the forward passes 12% faster, RSS no higher (517-750 MB against 730 MB).
Two limits (a review measured them): on a thread other than the main one (the server's model
thread, Beam's bundle threads) glibc allocates from a per-thread arena of at most 64 MiB, so
buffers above that are still mapped afresh, and ``malloc_trim`` does not give back the free
top of such an arena: up to ~48-64 MB more per model thread stays resident after a trim.

Everything here is a no-op where the C library is not glibc or there is no /proc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

DEFAULT_SLACK_BYTES = 256 * 1024 * 1024
LARGE_BUFFER_BYTES = 1024 * 1024 * 1024  # below this, buffers are heap memory the trimmer manages
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")  # runs ldconfig: once per process
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_freed_memory() -> None:
    """Return freed heap memory to the OS."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def hold_large_buffers_on_heap() -> bool:
    """Serve buffers up to ``LARGE_BUFFER_BYTES`` from the heap and never shrink it on free:
    freed tensors are reused without page faults until a trim. Process-wide and idempotent;
    only safe with a ``HeapTrimmer`` trimming (alone, RSS grows to the high-water mark), and
    not undone when the trimmer goes. False where this is not glibc or glibc refused a value."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    # Each on its own: a glibc that refuses one (before 2.35, mmap thresholds over 32 MiB)
    # still takes the other.
    mapped = bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))
    trimmed = bool(mallopt(_M_TRIM_THRESHOLD, LARGE_BUFFER_BYTES))
    return mapped and trimmed


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class HeapTrimmer:
    """Trims the heap at the end of every buffer (``trim``) and between batches once resident
    memory has grown by ``slack_bytes`` since the last trim (``after_batch``): trimming after
    every batch would page-fault the next batch's memory afresh each time. Creating one holds
    large buffers on the heap (``hold_large_buffers_on_heap``): the trimmer is what makes that
    safe."""

    def __init__(self, slack_bytes: int = DEFAULT_SLACK_BYTES) -> None:
        hold_large_buffers_on_heap()
        self._slack = slack_bytes
        self._floor = resident_bytes()

    def after_batch(self) -> None:
        if resident_bytes() > self._floor + self._slack:
            self.trim()

    def trim(self) -> None:
        release_freed_memory()
        self._floor = resident_bytes()
