"""Why records were dead-lettered, in a few words: the most common reason, and for records
without the text field the fields they do have (so that the run can say "did you mean
--text-field body?").

Each dead letter gives keys: its reason (stage and error, numbers generalised to N so that
"line 3" and "line 7" count together) and, when its text field was missing, its record's
field names (those with a string value apart). They are counted twice: as Beam counters,
which the launcher reads after the run, and as a list a publishing pipeline step takes as a
side input. ``describe_dead_letters`` turns either into one line.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from typing import Any, Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from inference_enrich.transforms.documents import VALIDATE
from inference_enrich.transforms.metrics import METRICS_NAMESPACE

REASON, FIELD, STRING_FIELD = "dead_letter_reason", "dead_letter_record_field", "dead_letter_record_string_field"
COUNTER_KINDS = (REASON, FIELD, STRING_FIELD)
MAX_REASON = 160
MAX_FIELDS_PER_RECORD = 50
_NUMBER = re.compile(r"(?<![\w'\"])\d+")


def digest_keys(letter: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) keys of one dead letter (see module docstring)."""
    reason = _NUMBER.sub("N", f"{letter.get('stage')}: {letter.get('error')}")
    yield REASON, reason[:MAX_REASON]
    record = letter.get("record")
    if letter.get("stage") == VALIDATE and str(letter.get("error", "")).startswith("missing text field") \
            and isinstance(record, dict):
        for name in list(record)[:MAX_FIELDS_PER_RECORD]:
            yield (STRING_FIELD if isinstance(record[name], str) and record[name].strip() else FIELD), str(name)


class CountDigestKeys(beam.DoFn):
    """Dead letter -> its digest keys, each also counted as a counter ``kind:name``."""

    def process(self, letter: dict[str, Any]) -> Iterator[tuple[str, str]]:
        for kind, name in digest_keys(letter):
            Metrics.counter(METRICS_NAMESPACE, f"{kind}:{name}").inc()
            yield kind, name


class GatherDigest(beam.PTransform):
    """Digest keys -> one list of ((kind, name), count) (a global combine: batch only)."""

    def expand(self, keys):
        return (keys
                | "CountKeys" >> beam.combiners.Count.PerElement()
                | "AllCounts" >> beam.combiners.ToList())


def counts_from_counters(counters: dict[str, int]) -> dict[tuple[str, str], int]:
    """The digest's counts from the job's counters (names ``kind:name``)."""
    counts = {}
    for key, value in counters.items():
        kind, _, name = key.partition(":")
        if kind in COUNTER_KINDS and name:
            counts[(kind, name)] = value
    return counts


def describe_dead_letters(counts: Iterable[tuple[tuple[str, str], int]] | dict, text_field: str,
                          id_field: str) -> str:
    """"most common: STAGE: ERROR (N)", and for a missing text field the fields the records
    have and the likely text field ("did you mean --text-field body?"); "" without letters."""
    pairs = counts.items() if isinstance(counts, dict) else counts
    by_kind: dict[str, Counter] = {kind: Counter() for kind in COUNTER_KINDS}
    for (kind, name), count in pairs:
        by_kind[kind][name] += count
    if not by_kind[REASON]:
        return ""
    reason, count = by_kind[REASON].most_common(1)[0]
    text = f"most common: {reason} ({count:,})"
    fields = by_kind[FIELD] + by_kind[STRING_FIELD]
    if reason.startswith(f"{VALIDATE}: missing text field") and fields:
        text += f"; the records have fields: {', '.join(sorted(fields))}"
        strings = [name for name, _ in by_kind[STRING_FIELD].most_common() if name != id_field]
        guess = difflib.get_close_matches(text_field, strings, n=1) or strings[:1]
        if guess:
            text += f" (did you mean --text-field {guess[0]}?)"
    return text
