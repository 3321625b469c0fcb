"""The public API (README "Use it in your own pipeline"): Enrich over dicts and beam.Rows,
EndpointModelHandler under Beam's RunInference, the writers taking enriched dicts, and the
README example itself, all on Beam's in-process runner against the real model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.util import assert_that, equal_to

from inference_enrich import (
    DEAD_LETTER_TAG,
    BatchingConfig,
    EndpointModelHandler,
    Enrich,
    IndexSettings,
    IndexSpec,
    ReadDocuments,
    WriteDeadLetters,
    WriteEnrichedParquet,
    WriteToSearchIndex,
)
from inference_enrich.indexes import open_index
from inference_enrich.inference import UnknownEndpointError
from inference_enrich.pipelines.config import JobConfig

from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run, sparse, write_lines

REPO = Path(__file__).resolve().parents[1]
SAMPLE = [
    json.loads(line)
    for line in (resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl")
    .read_text()
    .splitlines()
]
INVALID = {  # id -> (record, stage, error)
    "no-text": ({"id": "no-text", "title": "missing"}, "validate", "missing text field 'text'"),
    "number-text": ({"id": "number-text", "text": 42}, "validate",
                    "text field 'text' must be a string, got int"),
    "blank-text": ({"id": "blank-text", "text": "  "}, "validate", "text field 'text' is empty"),
}
# (Inference-stage dead letters of the same transform: tests/test_inference_faults.py.)


@pytest.fixture(scope="module")
def pipeline_rows(tmp_path_factory):
    """The job's own output for the sample corpus: the reference for every path here."""
    output = str(tmp_path_factory.mktemp("job") / "out")
    run(JobConfig(output=output))
    return read_output(output)


def matches_dead_letters(expected: dict[str, tuple]):
    """A Beam matcher: one dead letter per expected id, with its stage, error and record."""

    def check(letters):
        by_id = {letter["record"]["id"]: letter for letter in letters}
        assert len(by_id) == len(letters) == len(expected), letters
        for key, (record, stage, error) in expected.items():
            letter = by_id[key]
            assert set(letter) == {"stage", "error", "record"}, letter
            assert (letter["stage"], letter["record"]) == (stage, record)
            assert letter["error"].startswith(error), letter["error"]

    return check


def test_enrich_over_dicts_equals_the_pipeline_and_dead_letters_invalid_records(pipeline_rows):
    reference = {key: sparse(row) for key, row in pipeline_rows.items()}
    records = SAMPLE + [record for record, _, _ in INVALID.values()]

    def check_enriched(rows):
        assert sorted(row["id"] for row in rows) == sorted(reference)
        originals = {record["id"]: record for record in SAMPLE}
        for row in rows:
            original = originals[row["id"]]
            assert set(row) == set(original) | {"embedding", "is_truncated"}
            assert {key: row[key] for key in original} == original  # input fields untouched
            assert row["is_truncated"] is False
            assert row["embedding"] == pytest.approx(reference[row["id"]], abs=1e-5)
            assert list(row["embedding"].values()) == sorted(row["embedding"].values(), reverse=True)

    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        enriched, dead_letters = pipeline | beam.Create(records) | Enrich("my-elser-model")
        assert_that(enriched, check_enriched)
        assert_that(dead_letters, matches_dead_letters(INVALID), label="DeadLetters")


def test_enrich_over_beam_rows_with_other_field_names(pipeline_rows):
    reference = {key: sparse(row) for key, row in pipeline_rows.items()}
    sample = SAMPLE[:8]
    rows = [beam.Row(doc_id=r["id"], body=r["text"], year=r["year"]) for r in sample]
    rows.append(beam.Row(doc_id="none-body", body=None, year=1900))

    def check_enriched(enriched):
        assert sorted(row["id"] for row in enriched) == sorted(r["id"] for r in sample)
        for row in enriched:
            assert set(row) == {"doc_id", "body", "year", "tokens", "is_truncated", "id"}
            assert row["doc_id"] == row["id"]
            assert row["tokens"] == pytest.approx(reference[row["id"]], abs=1e-5)

    def check_dead(letters):
        assert letters == [{
            "stage": "validate",
            "error": "text field 'body' must be a string, got NoneType",
            "record": {"doc_id": "none-body", "body": None, "year": 1900},
        }]

    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        outputs = pipeline | beam.Create(rows) | Enrich(
            "my-elser-model", text_field="body", id_field="doc_id", output_field="tokens"
        )
        assert_that(outputs.enriched, check_enriched)
        assert_that(outputs.dead_letter, check_dead, label="DeadLetters")


def test_enrich_chains_into_enrich(pipeline_rows):
    """``Enrich`` emits ``EnrichedRecord``s (mappings, not dicts); a second ``Enrich`` over
    them must enrich them again, keeping the first output field as an input field, not
    dead-letter every record as "expected a JSON object"."""
    reference = {key: sparse(row) for key, row in pipeline_rows.items()}
    sample = SAMPLE[:4]

    def check_twice(rows):
        assert sorted(row["id"] for row in rows) == sorted(record["id"] for record in sample)
        for row in rows:
            assert row["first"] == pytest.approx(reference[row["id"]], abs=1e-5)
            assert row["second"] == pytest.approx(reference[row["id"]], abs=1e-5)

    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        first = pipeline | beam.Create(sample) | "First" >> Enrich("my-elser-model", output_field="first")
        second = first.enriched | "Second" >> Enrich("my-elser-model", output_field="second")
        assert_that(second.enriched, check_twice)
        assert_that(first.dead_letter | beam.combiners.Count.Globally(), equal_to([0]), label="NoFirstLetters")
        assert_that(second.dead_letter | "CountSecond" >> beam.combiners.Count.Globally(), equal_to([0]),
                    label="NoSecondLetters")


def test_read_documents_enrich_and_the_writers_compose_into_the_job(tmp_path, pipeline_rows):
    sample = resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl"
    lines = sample.read_bytes().splitlines()
    source = write_lines(tmp_path / "in.jsonl", lines[:10] + [b"not json", b'{"id": "x", "text": 1}'])
    output = str(tmp_path / "out")
    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        read = pipeline | ReadDocuments([str(source)])
        enriched, dead_letters = read.documents | Enrich("my-elser-model")
        _ = enriched | WriteEnrichedParquet(output, "text", "embedding", "sparse_embedding")
        _ = (read[DEAD_LETTER_TAG], dead_letters) | beam.Flatten() | WriteDeadLetters(output)

    rows = read_output(output)
    assert set(rows) == {json.loads(line)["id"] for line in lines[:10]}
    for key, row in rows.items():
        expected = pipeline_rows[key]
        assert (row["text"], row["is_truncated"]) == (expected["text"], expected["is_truncated"])
        assert json.loads(row["passthrough"]) == json.loads(expected["passthrough"])
        assert sparse(row) == pytest.approx(sparse(expected), abs=1e-5)
    letters = sorted(read_dead_letters(output), key=lambda letter: letter["line"])
    assert [(letter["stage"], letter["line"]) for letter in letters] == [("parse", 11), ("validate", 12)]
    assert all(letter["source"].endswith("in.jsonl") for letter in letters)


def test_enriched_records_go_into_the_embedded_index(tmp_path, pipeline_rows):
    records = SAMPLE[:5]
    settings = IndexSettings("embedded", path=str(tmp_path / "idx"))
    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        enriched, _ = pipeline | beam.Create(records) | Enrich("my-elser-model")
        rejected = enriched | WriteToSearchIndex(settings, IndexSpec("text", "embedding"))
        assert_that(rejected, equal_to([]))

    index = open_index(settings)
    try:
        assert index.count() == 5
        query = sparse(pipeline_rows[records[2]["id"]])
        (best,) = index.search(query, "embedding", 1)
    finally:
        index.close()
    assert best.doc_id == records[2]["id"]
    assert {key: best.source[key] for key in ("title", "author", "text")} == {
        key: records[2][key] for key in ("title", "author", "text")}


def test_run_inference_with_endpoint_model_handler_equals_enrich(pipeline_rows):
    reference = {key: sparse(row) for key, row in pipeline_rows.items()}
    pairs = [(record["id"], record["text"]) for record in SAMPLE]

    def check(results):
        assert sorted(key for key, _ in results) == sorted(reference)
        for key, prediction in results:
            assert prediction.example == dict(pairs)[key]
            assert prediction.model_id == "my-elser-model"
            assert prediction.inference.is_truncated is False
            assert prediction.inference.embedding == pytest.approx(reference[key], abs=1e-5)

    handler = KeyedModelHandler(EndpointModelHandler("my-elser-model"))
    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        results = pipeline | beam.Create(pairs) | RunInference(handler)
        assert_that(results, check)


def test_with_exception_handling_routes_a_failing_element_to_the_failed_output(pipeline_rows):
    good = {record["text"]: sparse(pipeline_rows[record["id"]]) for record in SAMPLE[:3]}
    # One element per Beam batch, so that each failure takes only its own element along.
    handler = EndpointModelHandler("my-elser-model", batching=BatchingConfig(max_buffered_documents=1))

    def check_good(results):
        assert sorted(result.example for result in results) == sorted(good)
        for result in results:
            assert result.inference.embedding == pytest.approx(good[result.example], abs=1e-5)

    def check_failed(failures):
        errors = {repr(batch): str(error) for batch, error in failures}
        assert set(errors) == {"[7]", "[None]"}
        assert "takes str examples; element 0 of the batch is int: 7" in errors["[7]"]
        assert "element 0 of the batch is NoneType" in errors["[None]"]

    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        texts = pipeline | beam.Create([*good, 7, None])
        results, failed = texts | RunInference(handler).with_exception_handling()
        assert_that(results, check_good)
        assert_that(failed.failed_inferences, check_failed, label="Failed")


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use it in your own pipeline", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})

    printed = capsys.readouterr().out
    assert "'stage': 'validate', 'error': \"missing text field 'text'\"" in printed
    assert "'record': {'id': 'a3', 'body': 'a record without a text field'}" in printed
    assert "['sea', 'whale', 'fish']" in printed.splitlines()  # as the README says
    assert (tmp_path / "enriched" / "_SUCCESS").exists()  # published by the pipeline itself
    assert not list(tmp_path.rglob(".staging-*"))  # and its staging removed (issue #26)
    rows = read_output(str(tmp_path / "enriched"))
    assert set(rows) == {"a1", "a2"}
    assert json.loads(rows["a1"]["passthrough"]) == {"id": "a1", "lang": "en"}
    assert "port" in dict(rows["a1"]["tokens"])


def test_constructors_fail_before_the_pipeline_runs():
    with pytest.raises(UnknownEndpointError, match=r"Inference endpoint not found \[nope\]"):
        Enrich("nope")
    with pytest.raises(UnknownEndpointError):
        EndpointModelHandler("nope")
    with pytest.raises(ValueError, match="output_field 'id' must differ"):
        Enrich("my-elser-model", output_field="id")
    with pytest.raises(ValueError, match="takes no inference_args"):
        EndpointModelHandler("my-elser-model").validate_inference_args({"top_k": 3})


def test_enrich_reads_the_given_endpoints_file(tmp_path):
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(
        "endpoints:\n  top3:\n    task_type: sparse_embedding\n    service: transformers\n"
        "    service_settings: {model_id: splade-tiny}\n    task_settings: {top_k: 3}\n"
    )

    def check(rows):
        assert [len(row["embedding"]) for row in rows] == [3]

    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        enriched, _ = (pipeline | beam.Create([{"text": "whale at sea"}])
                       | Enrich("top3", endpoints_file=endpoints))
        assert_that(enriched, check)


def test_importing_the_package_loads_neither_torch_nor_beam():
    code = ("import sys, inference_enrich; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'apache_beam', 'transformers'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
