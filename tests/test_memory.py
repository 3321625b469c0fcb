"""HeapTrimmer against the real glibc heap: freed heap memory goes back to the OS at a trim,
and between batches only once resident memory has grown by more than the slack.

Each scenario runs in a fresh interpreter: in the test process, heap holes and threads left
by earlier tests would decide how much a fresh allocation grows resident memory."""

from __future__ import annotations

import json
import subprocess
import sys

MB = 1024 * 1024

SCENARIO = r"""
import ctypes, json, sys
from inference_enrich.inference.memory import HeapTrimmer, release_freed_memory, resident_bytes

def fragment_heap(megabytes):
    # 64 KiB blocks (below glibc's mmap threshold), each followed by a small block that stays
    # allocated; freeing the big ones leaves the memory stuck between live blocks, so only
    # malloc_trim gives it back.
    blocks, pins = [], []
    for _ in range(megabytes * 16):
        block = ctypes.create_string_buffer(64 * 1024)
        ctypes.memset(block, 1, 64 * 1024)
        blocks.append(block)
        pins.append(ctypes.create_string_buffer(1024))  # > 512 B: from the heap, not pymalloc
    del blocks
    return pins

release_freed_memory()
lazy, eager = HeapTrimmer(slack_bytes=512 << 20), HeapTrimmer(slack_bytes=100 << 20)
readings = {"start": resident_bytes()}
pins = fragment_heap(200)
readings["fragmented"] = resident_bytes()
getattr(lazy, sys.argv[1])()
readings["after_lazy"] = resident_bytes()
getattr(eager, sys.argv[1])()
readings["after_eager"] = resident_bytes()
print(json.dumps(readings))
"""


def heap_readings(method: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", SCENARIO, method], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def test_after_batch_trims_only_after_growth_beyond_the_slack():
    readings = heap_readings("after_batch")
    assert readings["start"] > 0  # Linux with /proc: what CI and the workers run on
    assert readings["fragmented"] - readings["start"] > 150 * MB  # freed, but still resident
    # Grown by less than the lazy trimmer's 512 MB slack: the pages stay for the next batch.
    assert readings["after_lazy"] > readings["fragmented"] - 20 * MB
    # Grown by more than the eager trimmer's 100 MB slack: given back.
    assert readings["after_eager"] < readings["fragmented"] - 150 * MB


def test_trim_returns_freed_heap_memory_whatever_the_slack():
    readings = heap_readings("trim")
    assert readings["after_lazy"] < readings["fragmented"] - 150 * MB
