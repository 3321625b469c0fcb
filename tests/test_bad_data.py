"""Issue #21, item 4: bad data anywhere in a record is one dead letter, at every writer and on
Kafka; a UTF-8 byte-order mark at the start of an input file is not data.

Each test is named after the row of the issue's table it covers and failed on the code
before the fix (a lone surrogate in a field other than the text made the Parquet writer raise
and the run fail; a BOM became part of the CSV header or dead-lettered a JSONL record)."""

from __future__ import annotations

import io
import json
import uuid

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from inference_enrich.indexes import IndexSettings, IndexSpec, open_index
from inference_enrich.inference.results import SparseEmbedding
from inference_enrich.pipelines.cli import main
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.transforms.bundle_files import RunFiles
from inference_enrich.transforms.dead_letters import JsonLinesBundleWriter, WriteDeadLetters
from inference_enrich.transforms.documents import Document, EnrichedDocument, dead_letter
from inference_enrich.transforms.write_index import WriteToSearchIndex

from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run, write_lines

BOM = b"\xef\xbb\xbf"
# Valid UTF-8 JSON whose "title" decodes to a lone UTF-16 surrogate (half an emoji).
SURROGATE_TITLE = b'{"id": "half-emoji", "text": "a fine text", "title": "broken \\ud83d emoji"}'
SURROGATE_KEY = b'{"id": "odd-key", "text": "another fine text", "\\udc00": 1}'
DEEP = b'{"id": "deep", "text": "deep text", "nested": ' + b"[" * 5000 + b"]" * 5000 + b"}"
GOOD = [b'{"id": "a", "text": "The whale surfaced near the ship."}',
        b'{"id": "b", "text": "Ships sail the sea."}']


def test_a_record_with_a_lone_surrogate_in_a_field_other_than_the_text_is_one_dead_letter(tmp_path, capsys):
    source = write_lines(tmp_path / "in.jsonl", [GOOD[0], SURROGATE_TITLE, SURROGATE_KEY, DEEP, GOOD[1]])
    output = str(tmp_path / "out")
    # 3 of the 5 records are bad on purpose: above the default --max-dead-letter-ratio
    assert main(["run", "--input", str(source), "--output", output, "--quiet",
                 "--max-dead-letter-ratio", "1"]) == 0
    assert set(read_output(output)) == {"a", "b"}
    letters = {letter["line"]: letter for letter in read_dead_letters(output)}
    assert sorted(letters) == [2, 3, 4]
    assert letters[2]["stage"] == "validate"
    assert "field 'title'" in letters[2]["error"] and "not valid Unicode" in letters[2]["error"]
    assert json.loads(letters[2]["raw"]) == json.loads(SURROGATE_TITLE)  # restored exactly
    assert json.loads(letters[3]["raw"]) == json.loads(SURROGATE_KEY)
    assert letters[4]["stage"] in ("parse", "validate") and "nest" in letters[4]["error"]


def test_dead_letters_carry_and_write_any_string_as_json_that_restores_it(tmp_path):
    """A dead letter's record, error or raw text holding a lone surrogate: Beam's coders
    cannot carry such a dict, nor UTF-8 hold it. ``dead_letter`` keeps the record as escaped
    JSON (``json.loads`` restores it) and escapes the other strings; the file writer escapes
    whatever still reaches it (a letter a user's own DoFn built)."""
    record = {"id": "r", "k\udc00": "v \ud83d"}
    letters = [dead_letter("custom", "bad \ud83d", "src \udcff", record=record, line=3),
               dead_letter("parse", "bad", None, raw="\udcff raw")]
    with beam.Pipeline(options=PipelineOptions(IN_PROCESS)) as pipeline:
        _ = pipeline | beam.Create(letters) | WriteDeadLetters(str(tmp_path / "out"))
    written = sorted(read_dead_letters(str(tmp_path / "out")), key=lambda letter: letter["stage"])
    assert json.loads(written[0]["raw"]) == record
    assert written[0]["error"] == "bad \\ud83d" and written[0]["source"] == "src \\udcff"
    assert written[1]["raw"] == "\\udcff raw"

    stream = io.BytesIO()
    writer = JsonLinesBundleWriter(RunFiles.published_per_bundle(str(tmp_path / "direct")))
    writer.open_file(stream)
    by_hand = {"stage": "custom", "error": "e \ud83d", "record": record}
    writer.write(by_hand)
    assert json.loads(stream.getvalue().decode("utf-8")) == by_hand


def enriched(doc_id: str, **fields) -> EnrichedDocument:
    record = {"id": doc_id, "text": "Whales sing.", **fields}
    return EnrichedDocument(Document(doc_id, "Whales sing.", record), SparseEmbedding({"whale": 1.5}, False))


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch", "embedded"])
def test_a_value_an_index_cannot_hold_is_one_dead_letter_at_the_index_sink(kind, request, tmp_path):
    """Enriched documents reach the index sinks from users' own pipelines too: a lone
    surrogate, bytes, a set or a NaN in a passthrough field is that document's dead letter
    (stage index); the others are indexed. Before: the bulk request failed whole (the
    client's SerializationError, or the server refusing invalid UTF-8), so the bundle was
    retried until the job failed."""
    if kind == "embedded":
        settings = IndexSettings("embedded", path=str(tmp_path / "idx"))
    else:
        url = request.getfixturevalue(f"{kind}_url")
        settings = IndexSettings(kind, url=url, index=f"bad-{uuid.uuid4().hex[:8]}")
    spec = IndexSpec("text", "embedding")
    documents = [enriched("ok-1", n=1), enriched("surrogate", title="x \ud83d"), enriched("bytes", blob=b"\x00\xff"),
                 enriched("set", tags={"a"}), enriched("nan", score=float("nan")), enriched("ok-2", n=2)]
    def check(letters):
        written = {(json.loads(letter["raw"]) if "raw" in letter else letter["record"])["id"]: letter
                   for letter in letters}
        assert set(written) == {"surrogate", "bytes", "set", "nan"}
        assert all(letter["stage"] == "index" for letter in written.values())
        assert "not valid Unicode" in written["surrogate"]["error"]
        assert "bytes" in written["bytes"]["error"] and "set" in written["set"]["error"]
        assert "not JSON (NaN" in written["nan"]["error"]

    with beam.Pipeline(options=PipelineOptions(IN_PROCESS)) as pipeline:
        letters = (pipeline | beam.Create(documents, reshuffle=False)
                   | WriteToSearchIndex(settings, spec, max_buffering_duration_secs=0))
        assert_that(letters, check)
    index = open_index(settings)
    try:
        assert index.count() == 2
    finally:
        index.close()


@pytest.mark.kafka
def test_a_kafka_message_with_a_lone_surrogate_is_a_dead_letter_with_its_offset(kafka_bootstrap, tmp_path):
    """Before: the Parquet writer raised, the run failed, and a streaming job retried the
    bundle forever."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bad-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in [GOOD[0], SURROGATE_TITLE, DEEP, GOOD[1]]:
        producer.produce(topic, value=value, partition=0)
    producer.flush(30)
    for streaming in (False, True):
        output = str(tmp_path / f"out-{streaming}")
        job = JobConfig(source="kafka", kafka_bootstrap=kafka_bootstrap, kafka_topic=[topic],
                        kafka_group=f"g-{streaming}", output=output, streaming=streaming,
                        **({"stop_after_records": 4, "stop_after_seconds": 120} if streaming else {}))
        summary = run(job, [*IN_PROCESS, *(["--streaming"] if streaming else [])])
        assert summary.records_read == 4
        assert sorted(read_output(output)) == ["a", "b"]
        letters = read_dead_letters(output)
        assert sorted((l["topic"], l["partition"], l["offset"]) for l in letters) == [(topic, 0, 1), (topic, 0, 2)]
        assert sorted(json.loads(l["raw"])["id"] for l in letters if l["offset"] == 1) == ["half-emoji"]


@pytest.mark.parametrize("name, content, expected", [
    ("in.csv", BOM + b"text,id\r\nWhales sing.,a\r\nShips sail.,b\r\n", {"a", "b"}),
    ("in.jsonl", BOM + b"\n".join(GOOD) + b"\n", {"a", "b"}),
    ("in.json", BOM + b"[" + b",".join(GOOD) + b"]", {"a", "b"}),
])
def test_a_file_starting_with_a_utf8_byte_order_mark_reads_as_without_it(name, content, expected, tmp_path):
    source = tmp_path / name
    source.write_bytes(content)
    output = str(tmp_path / "out")
    summary = run(JobConfig(input=[str(source)], output=output))
    assert set(read_output(output)) == expected
    assert read_dead_letters(output) == []
    assert summary.records_read == len(expected)


def test_a_text_file_starting_with_a_byte_order_mark_keeps_no_bom_in_its_first_document(tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(BOM + b"Whales sing.\r\nShips sail.\r\n")
    output = str(tmp_path / "out")
    run(JobConfig(input=[str(source)], output=output))
    assert sorted(row["text"] for row in read_output(output).values()) == ["Ships sail.", "Whales sing."]


def test_non_finite_floats_in_other_fields_reach_parquet_passthrough_as_json_reads_them(tmp_path):
    """Python's JSON reader takes ``NaN``/``Infinity``; the Parquet sink keeps them in
    ``passthrough`` as ``json.loads`` reads them back (README, Outputs), nothing dropped."""
    import math

    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "n", "text": "nan field", "x": NaN, "y": -Infinity}'])
    summary = run(JobConfig(input=[str(source)], output=str(tmp_path / "out")))
    assert (summary.records_written, summary.dead_letters) == (1, 0)
    passthrough = json.loads(read_output(str(tmp_path / "out"))["n"]["passthrough"])
    assert math.isnan(passthrough["x"]) and passthrough["y"] == -math.inf
