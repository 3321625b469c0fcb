"""End the ``enrich`` process with its command's status, skipping the interpreter's teardown.

Why not just ``sys.exit``: the libraries a run loads (pyarrow, torch) keep native worker
threads. At interpreter shutdown a pyarrow pool thread may still be releasing a buffer that
wraps a Python object; it asks for the GIL, CPython ends such a thread with ``pthread_exit``,
and the forced unwind through a ``noexcept`` C++ destructor calls ``std::terminate``: SIGABRT,
exit status 134, after a run that succeeded and published its output (seen in CI). Nothing
after the command returns needs the interpreter's teardown, so the process does what a
normal exit does for Python code (flush the standard streams, run the ``atexit`` hooks:
logging's flush, temporary-file clean-up) and then leaves with ``os._exit``, before module
teardown and C++ static destructors, where those threads could abort it.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Callable, NoReturn


def exit_status(code: object) -> int:
    """A ``SystemExit`` code as the status the process would exit with (``None`` is 0, a
    message is printed and is 1), as the interpreter would make it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_and_exit(command: Callable[[], int]) -> NoReturn:
    """Run ``command`` (a ``main`` returning an exit status or raising ``SystemExit``) and end
    the process with its status; an unexpected exception is printed as usual, status 1."""
    try:
        status = exit_status(command())
    except SystemExit as stop:
        status = exit_status(stop.code)
    except Exception:  # printed as the interpreter prints an uncaught one (Ctrl-C exits as usual)
        sys.excepthook(*sys.exc_info())
        status = 1
    exit_now(status)


def exit_now(status: int) -> NoReturn:
    """Flush, run the ``atexit`` hooks, and leave without the interpreter's teardown. Output
    that could not be written (a full disk) makes a successful status 1: it is lost."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away: it has what it wanted
        pass
    except OSError as error:
        print(f"enrich: error: cannot write the output: {error}", file=sys.stderr)
        status = status or 1
    except ValueError:  # a stream already closed
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    atexit._run_exitfuncs()  # the hooks a normal exit runs; not public API, stable since 3.0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
