"""Input patterns are matched when the pipeline runs, not frozen into the job graph."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from inference_enrich.transforms.documents import DEAD_LETTER_TAG
from inference_enrich.transforms.match_files import first_match, match_pattern
from inference_enrich.transforms.read_files import ReadDocuments

IN_PROCESS = ["--runner=FnApiRunner"]


def write_files(directory: Path, count: int) -> None:
    directory.mkdir()
    for i in range(count):
        (directory / f"doc-{i:05d}.jsonl").write_text(json.dumps({"id": f"d{i}", "text": f"doc {i}"}) + "\n")


def graph_bytes(pattern: str, **options) -> int:
    pipeline = beam.Pipeline(argv=IN_PROCESS)
    _ = pipeline | ReadDocuments([pattern], **options)
    return len(pipeline.to_runner_api().SerializeToString())


@pytest.fixture(scope="module")
def many_and_two(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    write_files(root / "many", 20_000)
    write_files(root / "twoo", 2)  # same name length: the pattern is in the graph
    return root


@pytest.mark.parametrize("splittable_reads", [True, False])
@pytest.mark.parametrize("pattern", ["{}", "{}/*.jsonl"])
def test_a_20000_file_input_builds_a_job_graph_no_larger_than_a_2_file_one(many_and_two, pattern, splittable_reads):
    many = graph_bytes(pattern.format(many_and_two / "many"), splittable_reads=splittable_reads)
    two = graph_bytes(pattern.format(many_and_two / "twoo"), splittable_reads=splittable_reads)
    # The same pipeline serialises to a few dozen bytes more or less from one build to the
    # next (pickled DoFns); listing 20,000 file names would add ~50 KB.
    assert many <= two + 1024, (many, two)


def test_files_that_arrive_after_the_pipeline_is_built_are_read(tmp_path):
    write_files(tmp_path / "in", 2)
    pipeline = beam.Pipeline(argv=IN_PROCESS)
    read = pipeline | ReadDocuments([str(tmp_path / "in" / "*.jsonl")])
    assert_that(read.documents | beam.Map(lambda d: d.id), equal_to(["d0", "d1", "late"]))
    (tmp_path / "in" / "late.jsonl").write_text('{"id": "late", "text": "arrived after the build"}\n')
    pipeline.run().wait_until_finish()


def test_a_pattern_whose_files_vanished_before_the_run_fails_naming_it(tmp_path):
    write_files(tmp_path / "in", 1)
    pattern = str(tmp_path / "in" / "*.jsonl")
    pipeline = beam.Pipeline(argv=IN_PROCESS)
    read = pipeline | ReadDocuments([pattern])
    _ = read[DEAD_LETTER_TAG] | beam.Map(print)
    (tmp_path / "in" / "doc-00000.jsonl").unlink()
    with pytest.raises(Exception, match="no input files match"):
        pipeline.run().wait_until_finish()


def test_nothing_matching_fails_when_the_transform_is_built(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "_SUCCESS").write_text("")
    (tmp_path / "in" / "notes.doc").write_text("")
    for pattern in ("in", "in/*.csv", "in/missing.jsonl", "nowhere/**/*.jsonl"):
        with pytest.raises(FileNotFoundError, match="no input files match"):
            ReadDocuments([str(tmp_path / pattern)])


def test_the_launch_check_and_the_run_time_match_agree(tmp_path):
    for name in ("a/1.jsonl", "a/b/2.txt", "a/_private/3.jsonl", "a/.hidden/4.jsonl", "a/_5.jsonl",
                 "a/6.dat", "c/7.csv.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    patterns = ["a", "a/*.jsonl", "a/**/*.jsonl", "*/*.csv.gz", "a/[0-9].jsonl", "a/?.dat", "a/b",
                "a/*.parquet", "c", "a/_private", "nothing/*"]
    for pattern in patterns:
        full = str(tmp_path / pattern)
        matched = [found.url for found in match_pattern(full)]
        first = first_match(full)
        assert (first is None) == (not matched), pattern
        assert first is None or first in matched, pattern
    assert [Path(f.url).name for f in match_pattern(str(tmp_path / "a"))] == ["1.jsonl", "2.txt"]
