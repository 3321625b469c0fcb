"""The real pipeline on Beam's in-process runner: accounting, formats, windows, sinks."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window

from inference_enrich.inference import infer_texts
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.transforms import shared_runtimes
from inference_enrich.transforms.documents import DEAD_LETTER_TAG, Document
from inference_enrich.transforms.inference_dofn import BatchingConfig, InferenceDoFn

from conftest import SEED_TEXT
from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run, sparse, write_lines

MIXED_LINES = [
    b'{"id": "good-1", "text": "The whale surfaced near the ship.", "tags": ["sea"], "n": 1}',
    b'{"id": "good-2", "text": "' + SEED_TEXT.encode() + b'"}',
    b"this is not json",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"id": "no-text", "title": "missing"}',
    b'{"id": "number-text", "text": 42}',
    b'{"id": "empty-text", "text": "   "}',
    b'{"id": "bad-bytes", "text": "caf\xe9"}',
    b"",
    b'{"text": "A record without an id gets a stable hash."}',
    b"   ",
]
EXPECTED_DEAD = {  # line -> (stage, error prefix)
    3: ("parse", "invalid JSON"),
    4: ("validate", "expected a JSON object, got list"),
    5: ("validate", "expected a JSON object, got str"),
    6: ("validate", "missing text field 'text'"),
    7: ("validate", "text field 'text' must be a string, got int"),
    8: ("validate", "text field 'text' is empty"),
    9: ("parse", "not valid UTF-8"),
    10: ("parse", "blank line"),
    12: ("parse", "blank line"),
}


def test_every_record_ends_in_output_or_dead_letters(tmp_path, sparse_runtime):
    source = write_lines(tmp_path / "mixed.jsonl", MIXED_LINES)
    output = str(tmp_path / "out")
    # 9 of the 12 lines are bad on purpose: above the default --max-dead-letter-ratio
    summary = run(JobConfig(input=[str(source)], output=output, max_dead_letter_ratio=1.0))

    rows = read_output(output)
    letters = read_dead_letters(output)
    assert len(MIXED_LINES) == 12 == len(rows) + len(letters)
    assert (summary.records_read, summary.records_written, summary.dead_letters) == (12, 3, 9)

    assert {line: (l["stage"], l["error"][: len(EXPECTED_DEAD[line][1])]) for l in letters for line in [l["line"]]} == EXPECTED_DEAD
    for letter in letters:
        assert letter["source"].endswith("mixed.jsonl")
        assert ("record" in letter) != ("raw" in letter)
    by_line = {l["line"]: l for l in letters}
    assert by_line[3]["raw"] == "this is not json"
    assert by_line[4]["record"] == [1, 2, 3]
    assert by_line[6]["record"] == {"id": "no-text", "title": "missing"}
    assert by_line[9]["raw"] == '{"id": "bad-bytes", "text": "caf\\xe9"}'

    good = rows["good-1"]
    assert json.loads(good["passthrough"]) == {"id": "good-1", "tags": ["sea"], "n": 1}
    (expected,) = infer_texts(sparse_runtime, ["The whale surfaced near the ship."])
    assert sparse(good) == pytest.approx(expected.embedding, abs=1e-5)
    assert good["is_truncated"] is False
    hashed = [row for key, row in rows.items() if key not in ("good-1", "good-2")]
    assert len(hashed) == 1 and len(hashed[0]["id"]) == 32


def test_output_schema_is_explicit(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": 1, "body": "Hello there."}'])
    output = tmp_path / "out"
    run(JobConfig(input=[str(source)], output=str(output), text_field="body", output_field="tokens"))
    (part,) = output.glob("part-*.parquet")
    schema = pq.read_schema(part)
    assert schema.names == ["id", "body", "tokens", "is_truncated", "passthrough"]
    assert schema.field("tokens").type == pa.map_(pa.string(), pa.float32())
    assert schema.field("id").nullable is False
    assert read_output(str(output))["1"]["body"] == "Hello there."


def test_all_formats_and_compressions_in_one_directory(tmp_path):
    texts = ["Ships sail the sea.", "The sky above the port.", "Whales sing at night."]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    records = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
    jsonl = "\n".join(json.dumps(r) for r in records).encode()
    (inputs / "a.jsonl.gz").write_bytes(gzip.compress(jsonl))
    (inputs / "b.json.bz2").write_bytes(bz2.compress(json.dumps([{**r, "id": "json-" + r["id"]} for r in records]).encode()))
    text_csv = io.StringIO()
    writer = csv.DictWriter(text_csv, ["id", "text"])
    writer.writeheader()
    writer.writerows({**r, "id": "csv-" + r["id"]} for r in records)
    (inputs / "c.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(text_csv.getvalue().encode()))
    pq.write_table(pa.Table.from_pylist([{**r, "id": "pq-" + r["id"]} for r in records]), inputs / "d.parquet")
    (inputs / "e.txt").write_text("\n".join(texts) + "\n\n")
    (inputs / "_ignored.jsonl").write_text("not read: underscore files are hidden\n")
    (inputs / "notes.md").write_text("not read: unknown extension\n")

    output = str(tmp_path / "out")
    summary = run(JobConfig(input=[str(inputs)], output=output))
    rows = read_output(output)
    assert summary.dead_letters == 0 and read_dead_letters(output) == []
    assert len(rows) == 15
    by_text: dict[str, list[dict]] = {}
    for row in rows.values():
        by_text.setdefault(row["text"], []).append(sparse(row))
    assert sorted(by_text) == sorted(texts)
    for weights in by_text.values():
        assert len(weights) == 5
        for other in weights[1:]:
            assert other == pytest.approx(weights[0], abs=1e-5)


def test_memory_filesystem_input_and_output():
    fs = fsspec.filesystem("memory")
    fs.pipe("/enrich-test/in/docs.jsonl", b'{"id": "m1", "text": "In memory."}\n')
    output = "memory://enrich-test/out"
    run(JobConfig(input=["memory://enrich-test/in/*.jsonl"], output=output))
    assert set(read_output(output)) == {"m1"}


def test_missing_input_fails_before_running(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input files match"):
        run(JobConfig(input=[str(tmp_path / "nothing-*.jsonl")], output=str(tmp_path / "out")))


def test_rerun_replaces_previous_output(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "a", "text": "one"}', b"bad"])
    output = str(tmp_path / "out")
    run(JobConfig(input=[str(source)], output=output))
    run(JobConfig(input=[str(source)], output=output))
    assert set(read_output(output)) == {"a"}
    assert len(read_dead_letters(output)) == 1


def test_dense_endpoint_writes_float_lists(tmp_path, dense_runtime):
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "d", "text": "dense vectors"}'])
    output = tmp_path / "out"
    run(JobConfig(input=[str(source)], output=str(output), inference_id="my-minilm"))
    (part,) = output.glob("part-*.parquet")
    assert pq.read_schema(part).field("embedding").type == pa.list_(pa.float32())
    (expected,) = infer_texts(dense_runtime, ["dense vectors"])
    assert read_output(str(output))["d"]["embedding"] == pytest.approx(expected.embedding, abs=1e-5)


def test_inference_dofn_keeps_each_elements_window_and_timestamp(endpoints):
    docs = [Document(f"d{i}", f"document number {i} " * (i + 1), {}, "test") for i in range(12)]

    def describe(enriched, win=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam):
        yield enriched.document.id, int(win.start), int(ts)

    with beam.Pipeline(argv=IN_PROCESS) as pipeline:
        out = (
            pipeline
            | beam.Create([(d, i * 7) for i, d in enumerate(docs)])
            | "Stamp" >> beam.Map(lambda pair: window.TimestampedValue(pair[0], pair[1]))
            | beam.WindowInto(window.FixedWindows(20))
            | beam.ParDo(
                InferenceDoFn(endpoints.get("my-elser-model"), BatchingConfig(64, 3, 5))
            ).with_outputs(DEAD_LETTER_TAG, main="enriched")
        )
        assert_that(
            out.enriched | beam.ParDo(describe),
            equal_to([(f"d{i}", (i * 7) // 20 * 20, i * 7) for i in range(12)]),
        )
        assert_that(out[DEAD_LETTER_TAG], equal_to([]), label="NoDeadLetters")


def test_a_document_the_model_fails_on_is_dead_lettered(tmp_path, monkeypatch, sparse_runtime):
    # The real model never fails on valid text, so this fault is injected: a wrapper around
    # the real runtime raises for one document. The rest of its batch must still succeed.
    class FailsOnPoison:
        task_type = sparse_runtime.task_type
        tokenizes_locally = True
        max_sequence_length = sparse_runtime.max_sequence_length
        poison = sparse_runtime.tokenize(["poison pill"])[0].ids

        def tokenize(self, texts):
            return sparse_runtime.tokenize(texts)

        def embed(self, batch):
            if any(item.ids == self.poison for item in batch):
                raise RuntimeError("simulated kernel failure")
            return sparse_runtime.embed(batch)

    monkeypatch.setattr(shared_runtimes, "load_runtime", lambda endpoint: FailsOnPoison())
    # One model per process: an earlier test's real runtime for this endpoint must not serve.
    monkeypatch.setattr(shared_runtimes, "_SHARED_RUNTIMES", {})
    source = write_lines(
        tmp_path / "in.jsonl",
        [b'{"id": "ok-1", "text": "fine text"}', b'{"id": "bad", "text": "poison pill"}',
         b'{"id": "ok-2", "text": "more fine text"}'],
    )
    output = str(tmp_path / "out")
    summary = run(JobConfig(input=[str(source)], output=output, endpoints=None,
                            inference_id="my-elser-model", max_batch_size=8))
    assert set(read_output(output)) == {"ok-1", "ok-2"}
    (letter,) = read_dead_letters(output)
    assert letter["stage"] == "inference" and letter["line"] == 2
    assert letter["error"] == "RuntimeError: simulated kernel failure"
    assert letter["record"] == {"id": "bad", "text": "poison pill"}
    assert (summary.records_written, summary.dead_letters) == (2, 1)


def test_a_record_without_id_holding_a_lone_surrogate_costs_no_other_record(tmp_path):
    """The id of a record without one is a hash of its JSON; a lone UTF-16 surrogate (what
    a JSON \\ud83d escape decodes to) once made that hash raise, and the file reader turned
    the exception into "cannot read the rest of the file": every later record was lost."""
    source = write_lines(tmp_path / "in.jsonl", [
        b'{"id": "a", "text": "first"}',
        b'{"text": "broken \\ud83d emoji"}',
        b'{"id": "c", "text": "third"}',
        b'{"id": "d", "text": "fourth"}',
    ])
    summary = run(JobConfig(input=[str(source)], output=str(tmp_path / "out")))
    written, letters = read_output(str(tmp_path / "out")), read_dead_letters(str(tmp_path / "out"))
    assert {"a", "c", "d"} <= set(written)
    assert len(written) + len(letters) == 4 == summary.records_read
    assert all(letter["line"] == 2 for letter in letters)

def test_csv_field_of_200k_characters_loses_no_row(tmp_path):
    huge = "The whale sang beneath the ship. " * 6061  # 200,013 characters in one field
    rows = [{"id": "before", "text": "Ships sail the sea."}, {"id": "huge", "text": huge},
            {"id": "after", "text": "Whales sing at night."}]
    with open(tmp_path / "docs.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, ["id", "text"])
        writer.writeheader()
        writer.writerows(rows)
    output = str(tmp_path / "out")
    summary = run(JobConfig(input=[str(tmp_path / "docs.csv")], output=output))
    assert read_dead_letters(output) == []
    written = read_output(output)
    assert set(written) == {"before", "huge", "after"} and summary.records_written == 3
    assert written["huge"]["text"] == huge and written["huge"]["is_truncated"] is True


def test_a_run_that_cannot_account_for_every_record_is_refused():
    """The end-of-job check ``run_job`` applies before publishing: written + dead >= read."""
    from inference_enrich.transforms.publishing.accounting import unaccounted_records

    assert unaccounted_records({"records_read": 12, "records_written": 3, "dead_letters_written": 9}) is None
    assert unaccounted_records({}) is None  # a runner without metrics cannot be checked
    assert unaccounted_records({"records_read": 0}) is None
    assert unaccounted_records({"records_read": 12, "records_written": 3, "dead_letters_written": 8}) == (
        "12 records were read but only 11 accounted for (3 written, 8 dead-lettered)")
    assert "only 0 accounted for" in unaccounted_records({"records_read": 5})
    # a retried bundle counted twice (BundleBasedDirectRunner) is not a loss
    assert unaccounted_records({"records_read": 52, "records_written": 102, "dead_letters_written": 0}) is None
