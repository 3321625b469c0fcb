"""Beam log messages an ``enrich run`` user can do nothing about, kept off their terminal.

Each entry is (logger, text the message contains), with why it is noise. Only known
messages are dropped; everything else a worker or runner logs still shows."""

from __future__ import annotations

import logging

NOISE = (
    # Every multi_processing worker says so on start: the directory is where Dataflow stages
    # a pickled main session, which local workers never have and enrich does not use.
    ("apache_beam.runners.portability.local_job_service", "No semi_persistent_directory found"),
)


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self._fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self._fragment not in record.getMessage()


def silence_beam_noise() -> None:
    """Install the filters (once per logger and message, however often called)."""
    for logger_name, fragment in NOISE:
        logger = logging.getLogger(logger_name)
        if not any(isinstance(f, _DropMessages) and f._fragment == fragment for f in logger.filters):
            logger.addFilter(_DropMessages(fragment))
