"""The Kafka source against a real Kafka-protocol broker (noida-db) started by a fixture."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.pvalue import TaggedOutput
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from inference_enrich.indexes import IndexSettings, open_index
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.transforms.documents import Document, RecordFields
from inference_enrich.transforms.kafka import KafkaSettings, PartitionRange, plan_partitions
from inference_enrich.transforms.kafka import reader as kafka_module
from inference_enrich.transforms.kafka.parsing import message_to_document
from inference_enrich.transforms.kafka.reader import ReadKafkaDocuments, ReadKafkaPartitionFn

from pipeline_helpers import IN_PROCESS, read_dead_letters, read_output, run

pytestmark = pytest.mark.kafka

PARTITIONS = 3


def committed_offsets(settings: KafkaSettings) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the group's committed offset (-1001 when none)."""
    ranges = plan_partitions(KafkaSettings(settings.bootstrap, settings.topics, settings.group,
                                           "latest", settings.client_config))
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": settings.group})
    try:
        committed = consumer.committed([TopicPartition(r.topic, r.partition) for r in ranges], timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in committed}
    finally:
        consumer.close()


def is_bad(i: int) -> str | None:
    """Which messages are bad, and how: 2% of them."""
    return {7: "invalid-json", 57: "not-an-object", 91: "number-text"}.get(i % 150)


def message(i: int) -> bytes:
    bad = is_bad(i)
    if bad == "invalid-json":
        return b"{not json"
    if bad == "not-an-object":
        return b"[1, 2]"
    if bad == "number-text":
        return json.dumps({"text": i}).encode()
    return json.dumps({"text": f"Message {i}: the whale surfaced near ship {i % 17}.", "n": i}).encode()


def new_topic(bootstrap: str) -> str:
    topic = f"docs-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    for future in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result(30)
    return topic


def produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(first, first + count):
        producer.produce(topic, key=f"key-{i}".encode(), value=message(i), partition=i % PARTITIONS)
    producer.flush(30)


def kafka_job(bootstrap: str, topic: str, output: str, group: str = "enrich-test", **extra) -> JobConfig:
    return JobConfig(source="kafka", kafka_bootstrap=bootstrap, kafka_topic=[topic], kafka_group=group,
                     output=output, **extra)


def valid_keys(first: int, count: int) -> set[str]:
    return {f"key-{i}" for i in range(first, first + count) if not is_bad(i)}


def test_bounded_read_accounts_for_every_message_and_commits_end_offsets(kafka_bootstrap, tmp_path):
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 10_000)
    settings = KafkaSettings(kafka_bootstrap, (topic,), "enrich-test")
    ends = {(r.topic, r.partition): r.stop for r in plan_partitions(settings)}
    assert sum(ends.values()) == 10_000

    first = str(tmp_path / "first")
    summary = run(kafka_job(kafka_bootstrap, topic, first))
    rows, letters = read_output(first), read_dead_letters(first)
    assert len(rows) + len(letters) == 10_000
    assert set(rows) == valid_keys(0, 10_000)  # the key is the id when the record has none
    assert (summary.records_read, summary.dead_letters) == (10_000, len(letters))
    assert committed_offsets(settings) == ends

    bad = {(l["partition"], l["offset"]): l for l in letters}
    assert len(bad) == len(letters) == sum(1 for i in range(10_000) if is_bad(i))
    for letter in letters:
        assert letter["topic"] == topic and letter["source"] == f"kafka://{topic}/{letter['partition']}"
        assert letter["stage"] in ("parse", "validate")
    assert {l["stage"] for l in letters} == {"parse", "validate"}

    produce(kafka_bootstrap, topic, 10_000, 500)
    second = str(tmp_path / "second")
    summary = run(kafka_job(kafka_bootstrap, topic, second))
    assert summary.records_read == 500
    assert set(read_output(second)) == valid_keys(10_000, 500)
    assert sum(committed_offsets(settings).values()) == 10_500


def test_streaming_read_commits_after_each_bundle_and_stops_on_request(kafka_bootstrap, tmp_path):
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 300)
    output = str(tmp_path / "out")
    job = kafka_job(kafka_bootstrap, topic, output, group="streaming-test", streaming=True,
                    stop_after_records=300, stop_after_seconds=120)
    summary = run(job, [*IN_PROCESS, "--streaming"])
    assert summary.records_read == 300
    assert set(read_output(output)) == valid_keys(0, 300)
    offsets = committed_offsets(KafkaSettings(kafka_bootstrap, (topic,), "streaming-test"))
    assert sum(offsets.values()) == 300  # committed by bundle finalisation, not by the launcher


@pytest.mark.parametrize("sink", ["embedded", "elasticsearch"])
def test_streaming_into_index_sinks(sink, kafka_bootstrap, request, tmp_path):
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 150)
    if sink == "embedded":
        index = IndexSettings("embedded", path=str(tmp_path / "idx"))
    else:
        index = IndexSettings("elasticsearch", url=request.getfixturevalue("elasticsearch_url"),
                              index=f"stream-{topic}")
    job = kafka_job(kafka_bootstrap, topic, str(tmp_path / "out"), group=f"stream-{sink}",
                    streaming=True, stop_after_records=150, stop_after_seconds=120, sink=sink,
                    es_url=index.url, index=index.index, index_path=index.path)
    summary = run(job, [*IN_PROCESS, "--streaming"])
    assert summary.index_documents == len(valid_keys(0, 150))
    assert summary.records_written + summary.dead_letters == 150


@pytest.mark.parametrize("runner, state", [("CancelledRunner", "CANCELLED"), ("FailedRunner", "FAILED")])
def test_run_that_ends_cancelled_or_failed_commits_no_offsets(runner, state, kafka_bootstrap, tmp_path):
    """The runner reports the job cancelled or failed (without raising) after it read every
    message: the end offsets must stay uncommitted, so the next run reads them again, and
    the run must fail instead of reporting a result."""
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 30)
    job = kafka_job(kafka_bootstrap, topic, str(tmp_path / "out"), group="final-state")
    with pytest.raises(RuntimeError, match=f"ended in state {state}, not DONE"):
        run(job, [f"--runner=final_state_runners.{runner}"])
    offsets = committed_offsets(KafkaSettings(kafka_bootstrap, (topic,), "final-state"))
    assert all(offset < 0 for offset in offsets.values())


KILL_TEST_MESSAGES = 3_000  # noida-db's bulk API takes ~3 s per 500 documents


def test_killed_run_then_rerun_enriches_everything_once_per_id(kafka_bootstrap, elasticsearch_url, tmp_path):
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, KILL_TEST_MESSAGES)
    index = IndexSettings("elasticsearch", url=elasticsearch_url, index=f"kill-{topic}")
    command = [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--source", "kafka",
               "--kafka-bootstrap", kafka_bootstrap, "--kafka-topic", topic, "--kafka-group", "kill-test",
               "--sink", "elasticsearch", "--es-url", elasticsearch_url, "--index", index.index,
               "--output", str(tmp_path / "out"), "--quiet"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    client = None
    try:
        deadline = time.monotonic() + 300
        indexed = 0
        while time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
            try:
                client = client or open_index(index)
                indexed = client.count()
            except Exception:
                continue  # index not created yet
            if indexed > 0:
                break
        assert job.poll() is None, "the job ended before it could be killed"
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        assert 0 < indexed
        offsets = committed_offsets(KafkaSettings(kafka_bootstrap, (topic,), "kill-test"))
        assert all(offset < 0 for offset in offsets.values())  # nothing committed by a failed run

        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        expected = valid_keys(0, KILL_TEST_MESSAGES)
        assert client.count() == len(expected)  # every message once: no duplicates
        hits = {h.doc_id for h in client.search({"whale": 1.0}, "embedding", len(expected))}
        assert hits == expected
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        if client is not None:
            client.close()


def offsets_read(read_fn: ReadKafkaPartitionFn, part: PartitionRange, start: int, stop: int) -> list[int]:
    """Drive the splittable DoFn over one restriction, as a runner does after a split."""
    tracker = OffsetRestrictionTracker(OffsetRange(start, stop))
    watermark = ManualWatermarkEstimator(None)
    offsets = []
    for output in read_fn.process(part, None, tracker, watermark):
        element = (output.value if isinstance(output, TaggedOutput) else output).value
        offsets.append(element["offset"] if isinstance(element, dict) else element.line)
    tracker.check_done()
    return offsets


def test_split_restrictions_read_exactly_their_offsets(kafka_bootstrap):
    """Runners split restrictions and hand the parts to the same DoFn instance in any order;
    each part must yield exactly its offsets even when the consumer has fetched past it."""
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 3 * 1_200)
    settings = KafkaSettings(kafka_bootstrap, (topic,), "split-test")
    part = next(r for r in plan_partitions(settings) if r.partition == 1)
    read_fn = ReadKafkaPartitionFn(settings, RecordFields())
    read_fn.setup()
    try:
        assert offsets_read(read_fn, part, 0, 700) == list(range(700))
        assert offsets_read(read_fn, part, 700, 900) == list(range(700, 900))  # fetched already
        assert offsets_read(read_fn, part, 300, 500) == list(range(300, 500))  # behind the consumer
        assert offsets_read(read_fn, part, 900, 1_200) == list(range(900, 1_200))
        assert offsets_read(read_fn, part, 1_200, 1_200) == []
    finally:
        read_fn.teardown()


def test_fetch_slower_than_the_poll_window_is_not_thrown_away(kafka_bootstrap, monkeypatch):
    """On a loaded worker a fetch can take longer than the 50 ms poll window. Pausing the
    partition after an empty poll discarded the fetch in flight, so such a worker stalled at
    a multiple of 500 offsets until the stall timeout. Made deterministic with a poll window
    of zero, which every fetch is slower than (the one setting changed from the real reader)."""
    monkeypatch.setattr(kafka_module, "POLL_TIMEOUT_S", 0)
    monkeypatch.setattr(kafka_module, "STALL_TIMEOUT_S", 15)
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 3 * 1_200)
    settings = KafkaSettings(kafka_bootstrap, (topic,), "slow-fetch")
    part = next(r for r in plan_partitions(settings) if r.partition == 1)
    read_fn = ReadKafkaPartitionFn(settings, RecordFields())
    read_fn.setup()
    try:
        assert offsets_read(read_fn, part, 0, 1_200) == list(range(1_200))
    finally:
        read_fn.teardown()


def test_slow_downstream_work_is_not_mistaken_for_a_stalled_partition(kafka_bootstrap, monkeypatch):
    """Inference runs in the reader's thread, so a batch can take longer downstream than the
    stall timeout on a loaded worker; the stall clock measured from the batch's arrival, so
    the next empty poll raised at once ('no messages ... at offset 500'). Made deterministic
    with a 1 s stall timeout, 1.5 s of downstream work and a zero poll window."""
    monkeypatch.setattr(kafka_module, "POLL_TIMEOUT_S", 0)
    monkeypatch.setattr(kafka_module, "STALL_TIMEOUT_S", 1)
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 3 * 1_200)
    settings = KafkaSettings(kafka_bootstrap, (topic,), "slow-downstream")
    part = next(r for r in plan_partitions(settings) if r.partition == 1)
    read_fn = ReadKafkaPartitionFn(settings, RecordFields())
    read_fn.setup()
    tracker = OffsetRestrictionTracker(OffsetRange(0, 1_200))
    read = 0
    try:
        for _ in read_fn.process(part, None, tracker, ManualWatermarkEstimator(None)):
            read += 1
            if read % kafka_module.POLL_BATCH == 1:
                time.sleep(1.5)  # the batch is being enriched downstream
        tracker.check_done()
    finally:
        read_fn.teardown()
    assert read == 1_200


def test_message_parsing_rules():
    fields = RecordFields()
    document = message_to_document(b'{"text": "hi"}', b"the-key", "t", 1, 42, fields)
    assert isinstance(document, Document)
    assert (document.id, document.source, document.line) == ("the-key", "kafka://t/1", 42)
    assert message_to_document(b'{"id": "own", "text": "hi"}', b"k", "t", 1, 1, fields).id == "own"
    letter = message_to_document(b"\xff\xfe", None, "t", 2, 7, fields)
    assert (letter["stage"], letter["topic"], letter["partition"], letter["offset"]) == ("parse", "t", 2, 7)
    assert letter["error"].startswith("not valid UTF-8") and letter["raw"] == "\\xff\\xfe"
    letter = message_to_document(b'"text"', b"k", "t", 0, 3, fields)
    assert letter["stage"] == "validate" and "expected a JSON object" in letter["error"]


def expansion_request(reader) -> Any:
    """The settings a cross-language transform sends to the Java expansion service, decoded."""
    from apache_beam.coders import RowCoder
    from apache_beam.portability.api import external_transforms_pb2

    payload = external_transforms_pb2.ExternalConfigurationPayload.FromString(reader._payload)
    return RowCoder(payload.schema).decode(payload.payload)


def test_beam_reader_streams_unbounded_and_commits_after_the_runner_committed():
    """Beam's ReadFromKafka cannot run here (Java), so its expansion request is checked: our
    consumer settings, no record or time limit (they make KafkaIO a bounded read, which does
    not commit offsets: apache/beam#19369), offsets committed on bundle finalisation."""
    from apache_beam.io.kafka import ReadFromKafka

    settings = KafkaSettings("broker:9092", ("docs",), "g", streaming=True, reader="beam",
                             client_config={"security.protocol": "SASL_SSL"})
    reader = ReadKafkaDocuments(settings, RecordFields()).beam_reader()
    assert isinstance(reader, ReadFromKafka)
    request = expansion_request(reader)
    assert request.topics == ["docs"]
    assert {k: request.consumer_config[k] for k in ("bootstrap.servers", "group.id", "security.protocol")} == {
        "bootstrap.servers": "broker:9092", "group.id": "g", "security.protocol": "SASL_SSL"}
    assert request.consumer_config["enable.auto.commit"].lower() == "false"
    assert request.commit_offset_in_finalize is True
    assert (request.max_num_records, request.max_read_time) == (None, None)


@pytest.mark.parametrize("settings, problem", [
    ({}, "only with --streaming"),
    ({"streaming": True, "stop_after_records": 100}, "--stop-after-records"),
    ({"streaming": True, "stop_after_seconds": 60}, "--stop-after-seconds"),
])
def test_beam_reader_refuses_what_it_cannot_honour(settings, problem):
    """A bounded job must read up to the end offsets taken at launch and commit them only
    after success; KafkaIO can do neither, so kafka_reader: beam is refused there."""
    with pytest.raises(ValueError, match=problem):
        KafkaSettings("broker:9092", ("docs",), reader="beam", **settings)


def test_client_secrets_are_masked():
    settings = KafkaSettings("b:9092", ("t",), client_config={"sasl.password": "hunter2", "sasl.username": "me"})
    assert "hunter2" not in repr(settings) and "me" in repr(settings)
    assert "hunter2" not in repr(JobConfig(kafka_config={"sasl.password": "hunter2"}))
