"""Keep a long-running worker's memory flat.

Inference allocates and frees many multi-megabyte tensors of varying shapes. glibc keeps
freed heap memory for reuse, and its adaptive mmap threshold moves such blocks onto the
heap after the first frees, so fragmentation made RSS grow with every document processed
(measured: 0.5 GB -> 1.3 GB over 6,000 documents; 1.9 GB -> 6.8 GB over 10k vs 100k).
Asking glibc to return free heap pages after each buffer of documents keeps RSS flat at no
measurable cost (malloc_trim after every ~1,000 documents).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_freed_memory() -> None:
    """Return freed heap memory to the OS (glibc only; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
