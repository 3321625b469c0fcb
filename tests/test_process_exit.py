"""The ``enrich`` process exits with its command's status, whatever native threads are doing.

A CI run once ended a successful ``enrich run`` (output published, summary printed) with
SIGABRT: "terminate called without an active exception". At interpreter shutdown a pyarrow
pool thread was still dropping its last reference to a Python buffer (a Parquet read through
a Python file object); it asked for the GIL, CPython ends such threads with pthread_exit, and
the forced unwind through a noexcept C++ destructor aborts the process. A scheduler then sees a
failed job that in fact succeeded.

That race cannot be caused on demand with pyarrow, so this test stands it in with a thread
that does the same thing deterministically: a daemon thread inside torch (C++, noexcept
frames) that needs the GIL again as the interpreter shuts down. Run as ``python -m`` (the
console script is the same ``entry``), the command must still exit 0 with its output and the
atexit hooks (logging's flush, temporary-file clean-up) run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import atexit, runpy, sys, threading, time
    import torch

    matrix = torch.randn(256, 256)

    def keep_torch_busy():
        while True:
            matrix @ matrix

    threading.Thread(target=keep_torch_busy, daemon=True).start()
    time.sleep(0.1)
    atexit.register(lambda: print("atexit hook ran", flush=True))
    sys.argv = ["enrich", "endpoints"]
    runpy.run_module("inference_enrich.pipelines.cli", run_name="__main__")
""")


def test_a_native_thread_busy_at_shutdown_does_not_turn_success_into_an_abort():
    for _ in range(3):  # the old exit path aborted every time; three runs rule out luck
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "sparse_embedding" in done.stdout  # the command's whole output is there
        assert done.stdout.rstrip().endswith("atexit hook ran")
        assert "terminate called" not in done.stderr


def test_the_exit_status_of_a_failing_command_is_kept():
    done = subprocess.run([sys.executable, "-m", "inference_enrich.pipelines.cli", "infer", "no-such-endpoint", "x"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no-such-endpoint" in done.stderr


def test_an_argument_error_exits_2():
    done = subprocess.run([sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--no-such-flag"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--no-such-flag" in done.stderr
