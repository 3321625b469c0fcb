"""Whether a finished batch run may publish: every record read reached the output or the
dead letters, and the share of dead letters is within ``--max-dead-letter-ratio``.

The last line of defence for "a job never exits 0 with records missing": each stage
dead-letters what it cannot handle, and these checks hold their sum against what was read.
The launcher checks Beam's metrics after the run (``unaccounted_records``); a pipeline that
publishes itself checks exact element counts first (``PublishOutput``). Both use
``records_missing``.
"""

from __future__ import annotations


def records_missing(read: int, landed: int, exact: bool) -> str | None:
    """Why ``landed`` records (written or dead-lettered) do not account for ``read``, or None.

    ``exact``: element counts, which must be equal. Otherwise Beam metrics: some runners
    (BundleBasedDirectRunner) also count the work of a retried bundle, which inflates the
    sum, so only a shortfall fails (the published files themselves hold no duplicates:
    ``CommitManifest``)."""
    if landed == read or (not exact and landed > read):
        return None
    if exact:
        return f"{read:,} records were read but {landed:,} reached the output or the dead letters"
    return f"{read:,} records were read but only {landed:,} accounted for"


def unaccounted_records(counters: dict[str, int]) -> str | None:
    """Why a finished batch run must not count as a success, by its metrics, or None when
    the records written and dead-lettered add up to at least the records read. A runner that
    reports no metrics (``records_read`` absent) cannot be checked."""
    if "records_read" not in counters:
        return None
    written = counters.get("records_written", 0)
    dead = counters.get("dead_letters_written", 0)
    problem = records_missing(counters["records_read"], written + dead, exact=False)
    return f"{problem} ({written:,} written, {dead:,} dead-lettered)" if problem else None


def dead_letter_problem(read: int, dead: int, max_ratio: float, digest: str) -> str | None:
    """Why a run whose share of dead letters exceeds ``max_ratio`` fails, in one line, or None."""
    if not read or dead <= max_ratio * read:
        return None
    return (f"{dead:,} of {read:,} records ({dead / read:.0%}) were dead-lettered, more than "
            f"--max-dead-letter-ratio {max_ratio:g}" + (f"; {digest}" if digest else ""))
