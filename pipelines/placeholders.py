"""Catch the README's placeholders (``gs://BUCKET/tmp``, ``--project PROJECT``) left in a
command before anything runs.

A placeholder the user forgot to replace otherwise surfaces late and far from its cause: Beam
warns "Invalid GCS bucket", then spends minutes looking up credentials and a default bucket.
The words below are the placeholders the README and deploy/ use; each is upper case, which
no GCS bucket, GCP project or region, container image name or Kafka topic may be, so a value
holding one as a whole word is always a mistake (host names are the one exception in
principle; nobody names a host ``HOST``)."""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Mapping

PLACEHOLDERS = frozenset({"PROJECT", "REGION", "BUCKET", "IMAGE", "HOST", "BROKER"})
LOCATION_SETTINGS = ("input", "output", "kafka_bootstrap", "endpoints", "es_url", "index_path",
                     "api_key_file", "password_file", "ca_certs")
"""The job settings that name a place. Only URLs (``gs://...``, ``https://...``) and the Kafka
brokers are checked: a local directory may be called anything, and other settings, such as
a field name, may legitimately be an upper-case word."""
_WORD = re.compile(r"[A-Za-z0-9_]+")


def option_values(beam_args: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(``--flag``, value) for each valued option in a Beam argument list, in both
    ``--flag=value`` and ``--flag value`` forms."""
    flag = None
    for arg in beam_args:
        if arg.startswith("--"):
            flag, _, value = arg.partition("=")
            if value:
                yield flag, value
                flag = None
        elif flag is not None:
            yield flag, arg
            flag = None


def find_placeholders(beam_args: Iterable[str], settings: Mapping[str, object]) -> list[str]:
    """``"--flag VALUE (PLACEHOLDER)"`` for each value holding a placeholder word: the Beam
    options, then the job's location settings (each item of a list)."""
    values = list(option_values(beam_args))
    for name in LOCATION_SETTINGS:
        given = settings.get(name)
        for value in given if isinstance(given, (list, tuple)) else [given]:
            if isinstance(value, str) and ("://" in value or name == "kafka_bootstrap"):
                values.append((f"--{name.replace('_', '-')}", value))
    found = []
    for flag, value in values:
        words = sorted(set(_WORD.findall(value)) & PLACEHOLDERS)
        if words:
            found.append(f"{flag} {value} ({', '.join(words)})")
    return found


def check_placeholders(beam_args: Iterable[str], settings: Mapping[str, object]) -> None:
    """Raise ``ValueError`` naming, on one line, every placeholder left in the command."""
    found = find_placeholders(beam_args, settings)
    if found:
        raise ValueError("replace the placeholders copied from the README with your own values: "
                         + "; ".join(found))
