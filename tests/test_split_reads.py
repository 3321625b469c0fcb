"""Byte-range reads of line-based files: every line exactly once, whatever the splits."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.pvalue import TaggedOutput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_enrich.transforms.documents import DEAD_LETTER_TAG, Document, RecordFields
from inference_enrich.transforms.file_records import RecordOutputs
from inference_enrich.transforms.line_ranges import FileRange, plan_ranges, read_line_range
from inference_enrich.transforms.match_files import MatchedFile
from inference_enrich.transforms.read_files import ReadDocuments
from inference_enrich.transforms.resumable_reads import RetryPolicy

IN_PROCESS = ["--runner=FnApiRunner"]
TWO_PROCESSES = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]

# A line: its padding length (0 = an empty line), and its ending.
lines_strategy = st.lists(
    st.tuples(st.one_of(st.just(0), st.integers(1, 120)), st.sampled_from([b"\n", b"\r\n"])),
    min_size=0, max_size=40,
)


def jsonl_bytes(lines: list[tuple[int, bytes]], last_newline: bool) -> tuple[bytes, list[tuple[int, str | None]]]:
    """The file, and per line its offset and id (None: an empty line, a dead letter)."""
    data, expected = b"", []
    for number, (padding, ending) in enumerate(lines):
        body = b"" if padding == 0 else json.dumps({"id": f"r{number}", "text": "é" * padding}).encode()
        if number == len(lines) - 1 and not last_newline:
            ending = b""
        if body or ending:  # an empty last line without a newline is no line at all
            expected.append((len(data), None if padding == 0 else f"r{number}"))
        data += body + ending
    return data, expected


def drain(url: str, restriction: OffsetRange, split_fractions: list[float]) -> tuple[list, list[OffsetRange]]:
    """Read one restriction as a runner would, asking for a split after some outputs."""
    tracker = OffsetRestrictionTracker(restriction)
    outputs, residuals, fractions = [], [], iter(split_fractions)
    for output in read_line_range(url, "jsonl", tracker, RecordOutputs(RecordFields()), RetryPolicy()):
        outputs.append(output)
        fraction = next(fractions, None)
        if fraction is not None:
            split = tracker.try_split(fraction)
            if split is not None:
                residuals.append(split[1])
    tracker.check_done()
    return outputs, residuals


def seen(outputs) -> list[tuple[int, str | None]]:
    got = []
    for output in outputs:
        if isinstance(output, TaggedOutput):
            got.append((output.value["offset"], None))
        else:
            got.append((output.offset, output.id))
    return got


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=lines_strategy,
    last_newline=st.booleans(),
    cuts=st.lists(st.floats(0, 1), max_size=6),
    split_fractions=st.lists(st.one_of(st.just(0.0), st.floats(0, 1)), max_size=8),
)
def test_every_line_is_read_exactly_once_across_planned_and_dynamic_splits(
        tmp_path, lines, last_newline, cuts, split_fractions):
    data, expected = jsonl_bytes(lines, last_newline)
    path = tmp_path / "docs.jsonl"
    path.write_bytes(data)
    points = sorted({0, len(data), *(int(c * len(data)) for c in cuts)})
    pending = [OffsetRange(a, b) for a, b in zip(points, points[1:])]
    got = []
    while pending:
        restriction = pending.pop()
        outputs, residuals = drain(str(path), restriction, split_fractions)
        got.extend(seen(outputs))
        pending.extend(residuals)
    assert sorted(got, key=lambda g: g[0]) == expected
    # Lines straddling a cut were read by the range they start in: the count says it already;
    # line numbers are known (and right) in the range that starts the file only.


def test_line_numbers_are_kept_in_the_range_that_starts_the_file(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "with a BOM"}\n\n{"id": "b", "text": "x"}\n' * 3)
    first, rest = OffsetRange(0, 60), OffsetRange(60, path.stat().st_size)
    head, _ = drain(str(path), first, [])
    tail, _ = drain(str(path), rest, [])
    line_of = lambda o: o.line if isinstance(o, Document) else o.value.get("line")
    assert [line_of(o) for o in head] == [1, 2, 3]
    assert head[0].id == "a"  # the byte-order mark at byte 0 is not part of the record
    assert tail and all(line_of(o) is None for o in tail)  # unknown without reading the head
    assert [offset for offset, _ in seen(head + tail)] == [0, 37, 38, 63, 100, 101, 126, 163, 164]


def test_plan_splits_only_uncompressed_line_files_of_known_size():
    ranges = lambda url, size, fmt=None: list(plan_ranges(MatchedFile(url, size), fmt, 100))
    assert ranges("f.jsonl", 250) == [FileRange("f.jsonl", 0, 100, False), FileRange("f.jsonl", 100, 200, False),
                                      FileRange("f.jsonl", 200, 250, False)]
    assert len(ranges("f.txt", 101)) == 2 and len(ranges("f.ndjson", 101)) == 2
    assert len(ranges("f.data", 101, "jsonl")) == 2
    for whole in (ranges("f.jsonl.gz", 1000), ranges("f.csv", 1000), ranges("f.json", 1000),
                  ranges("f.parquet", 1000), ranges("f.jsonl", None), ranges("f.jsonl", 0)):
        assert whole == [FileRange(whole[0].url, 0, 1, True)]


def read_all(patterns: list[str], argv: list[str] = IN_PROCESS, **options) -> tuple[list, list]:
    """Run ReadDocuments and return (documents, dead letters) as plain values."""
    out = {}
    with beam.Pipeline(argv=argv) as pipeline:
        read = pipeline | ReadDocuments(patterns, **options)
        out["docs"] = read.documents | "Docs" >> beam.combiners.ToList()
        out["dead"] = read[DEAD_LETTER_TAG] | "Dead" >> beam.combiners.ToList()
        _ = out["docs"] | "KeepDocs" >> beam.Map(lambda docs: _store("docs", docs))
        _ = out["dead"] | "KeepDead" >> beam.Map(lambda dead: _store("dead", dead))
    return _STORE.pop("docs"), _STORE.pop("dead")


_STORE: dict = {}


def _store(key, value):
    _STORE[key] = value


def test_a_split_file_and_whole_files_give_the_records_and_dead_letters_of_an_unsplit_read(tmp_path):
    lines = [json.dumps({"id": f"r{i}", "text": f"line {i} " + "x" * (i % 37)}) for i in range(300)]
    lines[17], lines[150] = "not json", ""
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "small.jsonl.gz").write_bytes(gzip.compress(b'{"id": "g", "text": "gz"}\nbad\n'))
    (tmp_path / "t.csv").write_text('id,text\nc1,"two\nlines"\n')
    split_docs, split_dead = read_all([str(tmp_path)], split_bytes=97)
    whole_docs, whole_dead = read_all([str(tmp_path)], splittable_reads=False)
    assert sorted(d.id for d in split_docs) == sorted(d.id for d in whole_docs)
    assert len(split_docs) == 298 + 1 + 1
    by_key = lambda letters: sorted((Path(l["source"]).name, l["stage"]) for l in letters)
    assert by_key(split_dead) == by_key(whole_dead) == [("big.jsonl", "parse")] * 2 + [("small.jsonl.gz", "parse")]
    big = [l for l in split_dead if l["source"].endswith("big.jsonl")]
    offsets = {l["offset"] for l in big}
    data = (tmp_path / "big.jsonl").read_bytes()
    assert {data[o:].split(b"\n", 1)[0] for o in offsets} == {b"not json", b""}
    gz = [l for l in split_dead if l["source"].endswith(".gz")]
    assert gz[0]["line"] == 2 and "offset" not in gz[0]  # read whole: lines, as before


def test_one_big_file_is_read_by_both_workers_of_a_two_process_run(tmp_path):
    lines = [json.dumps({"id": f"r{i}", "text": f"line {i} " + "y" * (i % 53)}) for i in range(4000)]
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    pids = tmp_path / "pids"
    with beam.Pipeline(argv=TWO_PROCESSES) as pipeline:
        read = pipeline | ReadDocuments([str(path)], split_bytes=path.stat().st_size // 16 + 1)
        _ = (read.documents
             | beam.Map(lambda doc: f"{doc.id}\t{doc.offset}\t{os.getpid()}")
             | beam.io.WriteToText(str(pids / "part")))
    rows = [line.split("\t") for part in pids.glob("part*") for line in part.read_text().splitlines()]
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) == 4000 and set(ids) == {f"r{i}" for i in range(4000)}
    by_pid: dict[str, int] = {}
    for _, _, pid in rows:
        by_pid[pid] = by_pid.get(pid, 0) + 1
    assert len(by_pid) == 2, by_pid  # both worker processes read part of the one file
    assert str(os.getpid()) not in by_pid


def transform_names(pipeline: beam.Pipeline) -> set[str]:
    return {t.unique_name for t in pipeline.to_runner_api().components.transforms.values()}


def test_runners_without_splittable_dofns_read_whole_files(tmp_path):
    lines = [json.dumps({"id": f"r{i}", "text": f"line {i}"}) for i in range(50)] + ["bad"]
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n")
    docs, dead = read_all([str(tmp_path / "f.jsonl")], ["--runner=BundleBasedDirectRunner"], split_bytes=64)
    assert sorted(d.id for d in docs) == sorted(f"r{i}" for i in range(50))
    assert [(l["line"], l["stage"]) for l in dead] == [(51, "parse")]
    built = beam.Pipeline(runner="BundleBasedDirectRunner")
    _ = built | ReadDocuments([str(tmp_path / "f.jsonl")])
    assert not any("ReadRanges" in name or "PlanRanges" in name for name in transform_names(built))


def test_the_dask_runner_gets_whole_file_reads_and_the_parameter_forces_them_anywhere(tmp_path):
    (tmp_path / "f.jsonl").write_text('{"id": "a", "text": "x"}\n')
    splittable = beam.Pipeline(argv=IN_PROCESS)
    _ = splittable | ReadDocuments([str(tmp_path / "f.jsonl")])
    assert any("PlanRanges" in name for name in transform_names(splittable))
    forced = beam.Pipeline(argv=IN_PROCESS)
    _ = forced | ReadDocuments([str(tmp_path / "f.jsonl")], splittable_reads=False)
    assert not any("PlanRanges" in name for name in transform_names(forced))
    pytest.importorskip("distributed")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    on_dask = beam.Pipeline(runner=DaskRunner())
    _ = on_dask | ReadDocuments([str(tmp_path / "f.jsonl")])
    assert not any("PlanRanges" in name for name in transform_names(on_dask))


@pytest.mark.parametrize("content", [b"\xef\xbb\xbf", b"\xef\xbb\xbf" + b'{"id": "bom", "text": "after the mark"}\n'])
def test_a_byte_order_mark_reads_the_same_split_and_whole(tmp_path, content):
    """A BOM alone is an empty file, a BOM before a record is not part of it, whichever read
    path the runner takes (the split path used to dead-letter the lone mark as a blank line)."""
    (tmp_path / "marked.jsonl").write_bytes(content)
    split_docs, split_dead = read_all([str(tmp_path)])
    whole_docs, whole_dead = read_all([str(tmp_path)], splittable_reads=False)
    assert split_dead == whole_dead == []
    assert [d.id for d in split_docs] == [d.id for d in whole_docs] == (["bom"] if len(content) > 3 else [])


def test_a_file_matched_by_two_patterns_is_read_once(tmp_path):
    """Overlapping --input patterns (a directory and a glob inside it) name one file twice:
    it is read once, so its records are not enriched and published twice."""
    (tmp_path / "a.jsonl").write_text('{"id": "a1", "text": "x"}\n{"id": "a2", "text": "y"}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "b1", "text": "z"}\n')
    docs, dead = read_all([str(tmp_path), str(tmp_path / "a*.jsonl")])
    assert sorted(d.id for d in docs) == ["a1", "a2", "b1"] and dead == []
