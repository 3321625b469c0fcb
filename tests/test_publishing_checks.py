"""The small checks publishing rests on, over generated inputs: the accounting rule, the
lock reader and the step counters' names."""

from __future__ import annotations

import fsspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_enrich.transforms.metrics import StepMetrics
from inference_enrich.transforms.publishing.accounting import records_missing
from inference_enrich.transforms.publishing.output_dir import LOCK, read_lock

counts = st.integers(min_value=0, max_value=10**9)


@given(read=counts, landed=counts, exact=st.booleans())
def test_a_run_publishes_only_when_every_record_read_landed(read, landed, exact):
    """Exact element counts must match; Beam metrics (which a retried bundle may inflate) may
    exceed what was read but never fall short. Any refusal names both numbers."""
    problem = records_missing(read, landed, exact)
    assert (problem is None) == (landed == read or (not exact and landed > read))
    if problem is not None:
        assert f"{read:,}" in problem and f"{landed:,}" in problem


@given(content=st.one_of(st.binary(max_size=64), st.just(b'{"run_id": "r1", "pid": 1}'),
                         st.sampled_from([b"[1, 2]", b'"text"', b"null", b"7", b'{"run_id": "r1"'])))
def test_a_lock_file_that_is_not_a_json_object_reads_as_no_lock(tmp_path_factory, content):
    """A torn or foreign lock file is no lock (None), never an exception; a whole one is read."""
    output = tmp_path_factory.mktemp("out")
    (output / LOCK).write_bytes(content)
    holder = read_lock(fsspec.filesystem("file"), str(output))
    if content == b'{"run_id": "r1", "pid": 1}':
        assert holder == {"run_id": "r1", "pid": 1}
    else:
        assert holder is None or isinstance(holder, dict)


def test_a_lock_file_that_is_absent_reads_as_no_lock(tmp_path):
    assert read_lock(fsspec.filesystem("file"), str(tmp_path)) is None


def test_a_misspelt_counter_name_fails_instead_of_counting_unread():
    metrics = StepMetrics(["records_read"], ["batch_size"])
    metrics.inc("records_read")
    metrics.update("batch_size", 3)
    with pytest.raises(KeyError):
        metrics.inc("record_read")
    with pytest.raises(KeyError):
        metrics.update("batchsize", 3)
