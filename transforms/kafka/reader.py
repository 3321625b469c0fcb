"""Read documents from Kafka: a splittable DoFn per (topic, partition), on every runner.

Bounded mode (scheduled batch jobs, the default): when the job starts, ``plan_partitions``
takes, per partition, the group's committed offset (or earliest/latest by
``auto_offset_reset``) and the current end offset; the job reads exactly that range, and
``commit_end_offsets`` commits the end offsets for the group only after the pipeline has
succeeded. A failed run is simply run again; a successful re-run reads only newer messages.

Streaming mode: each partition's restriction is unbounded. Output timestamps are the
records' timestamps, the watermark follows them and never moves backwards, and offsets are
committed by bundle finalisation, i.e. only after the runner has durably committed the
bundle's output. When a partition is drained the DoFn defers the rest of its restriction
and is resumed a second later. ``stop_after_records`` / ``stop_after_seconds`` end a
streaming read (tests, demos, bounded catch-up jobs).

``reader: beam`` swaps in Beam's cross-language ``ReadFromKafka`` (needs a Java expansion
service: fine on Dataflow and Flink, impossible offline), for streaming jobs only: KafkaIO
can neither stop at the end offsets taken at launch nor commit them only after the job
succeeded, and a record or time limit turns it into a bounded read that commits no offsets
(apache/beam#19369). It reads unbounded and commits on bundle finalisation, as ours does.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from inference_enrich.inference.secrets import masked, protect_secrets, reveal
from inference_enrich.transforms.documents import (
    DEAD_LETTER_TAG,
    PARSE,
    VALIDATE,
    Document,
    InvalidRecord,
    RecordFields,
    dead_letter,
    to_document,
)
from inference_enrich.transforms.formats import TOO_DEEP
from inference_enrich.transforms.kafka.client import KafkaUnreachable, consumer as _consumer
from inference_enrich.transforms.metrics import METRICS_NAMESPACE

LOG = logging.getLogger(__name__)
UNBOUNDED_END = sys.maxsize
POLL_BATCH = 500
POLL_TIMEOUT_S = 0.05  # short: consume() waits the whole timeout unless POLL_BATCH arrive
STALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class KafkaSettings:
    """Where to read and how. ``client_config`` passes straight to confluent-kafka
    (``security.protocol``, ``sasl.*``, ``ssl.*``, timeouts, ...); values named like secrets
    are held as ``SecretStr`` (inference/secrets.py) and revealed only to the client."""

    bootstrap: str
    topics: tuple[str, ...]
    group: str = "inference-enrich"
    auto_offset_reset: str = "earliest"
    client_config: Mapping[str, Any] = field(default_factory=dict)
    streaming: bool = False
    stop_after_records: int | None = None
    stop_after_seconds: float | None = None
    reader: str = "python"

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_config", protect_secrets(self.client_config))
        if self.reader != "beam":
            return
        if not self.streaming:
            raise ValueError("kafka_reader: beam reads only with --streaming: Beam's ReadFromKafka cannot "
                             "stop at the end offsets taken at launch nor commit them after the job "
                             "succeeded; bounded jobs use kafka_reader: python")
        for name in ("stop_after_records", "stop_after_seconds"):
            if getattr(self, name) is not None:
                raise ValueError(f"kafka_reader: beam does not take --{name.replace('_', '-')}: a limit "
                                 "makes Beam's ReadFromKafka a bounded read, which commits no offsets")

    def consumer_config(self) -> dict[str, Any]:
        """The confluent-kafka consumer configuration (secrets revealed: give it only to the client)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "enable.auto.commit": False,
            "auto.offset.reset": self.auto_offset_reset,
            **reveal(self.client_config),
        }

    def __repr__(self) -> str:
        return (f"KafkaSettings(bootstrap={self.bootstrap!r}, topics={self.topics!r}, "
                f"group={self.group!r}, streaming={self.streaming}, "
                f"client_config={masked('client_config', self.client_config)!r})")


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, stop) of one partition; ``stop`` None means unbounded (streaming)."""

    topic: str
    partition: int
    start: int
    stop: int | None


def plan_partitions(settings: KafkaSettings, timeout: float = 30.0) -> list[PartitionRange]:
    """Every partition of the topics with the offsets this run reads (see module docstring).

    Raises ``KafkaUnreachable``, one line naming the brokers and the client's last error,
    when they cannot be asked."""
    from confluent_kafka import KafkaException

    errors: list[Any] = []
    consumer = _consumer(settings, errors.append)
    try:
        return _plan(consumer, settings, timeout)
    except KafkaException as error:
        consumer.poll(0)  # delivers the client's queued errors, which say why (errors.append)
        cause = (errors[-1] if errors else error.args[0]).str().split(": ", 1)[-1]
        raise KafkaUnreachable(
            f"cannot reach Kafka at {settings.bootstrap} for topic(s) {', '.join(settings.topics)}: {cause}; "
            "check --kafka-bootstrap (and the security settings in kafka_config) and that the brokers are up"
        ) from error
    finally:
        consumer.close()


def _plan(consumer, settings: KafkaSettings, timeout: float) -> list[PartitionRange]:
    from confluent_kafka import OFFSET_INVALID, TopicPartition

    partitions = []
    for topic in settings.topics:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ValueError(f"Kafka topic '{topic}' not found at {settings.bootstrap}")
        partitions += [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    committed = consumer.committed(partitions, timeout=timeout)
    ranges = []
    for tp in committed:
        low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
        if tp.offset != OFFSET_INVALID and tp.offset >= 0:
            start = tp.offset
        else:
            start = low if settings.auto_offset_reset == "earliest" else high
        ranges.append(PartitionRange(tp.topic, tp.partition, start, None if settings.streaming else high))
    return ranges


def commit_end_offsets(settings: KafkaSettings, ranges: Sequence[PartitionRange]) -> None:
    """Commit each range's end for the group (bounded mode, after the pipeline succeeded)."""
    from confluent_kafka import TopicPartition

    offsets = [TopicPartition(r.topic, r.partition, r.stop) for r in ranges if r.stop is not None]
    if not offsets:
        return
    consumer = _consumer(settings)
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def message_to_document(value: bytes | None, key: bytes | None, topic: str, partition: int,
                        offset: int, fields: RecordFields) -> Document | dict[str, Any]:
    """A document, or a dead letter (a dict) naming topic, partition and offset.

    Never raises for what a message holds: an exception here would fail the bundle, and the
    runner would read the same message again, forever."""
    source = f"kafka://{topic}/{partition}"
    where = {"topic": topic, "partition": partition, "offset": offset}
    try:
        record = json.loads((value or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raw = (value or b"").decode("utf-8", "backslashreplace")
        if isinstance(error, RecursionError):
            reason = TOO_DEEP
        else:
            problem = "not valid UTF-8" if isinstance(error, UnicodeDecodeError) else "invalid JSON"
            reason = f"{problem}: {error}"
        return {**dead_letter(PARSE, reason, source, raw=raw, line=offset), **where}
    if isinstance(record, dict) and record.get(fields.id_field) in (None, "") and key:
        record = {**record, fields.id_field: key.decode("utf-8", "backslashreplace")}
    try:
        return to_document(record, fields, source, offset)
    except InvalidRecord as error:
        return {**dead_letter(VALIDATE, str(error), source, record=record, line=offset), **where}


class _PartitionRestrictions(RestrictionProvider):
    def initial_restriction(self, part: PartitionRange) -> OffsetRange:
        return OffsetRange(part.start, part.stop if part.stop is not None else UNBOUNDED_END)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, part: PartitionRange, restriction: OffsetRange) -> int:
        return restriction.size()


class _StopCondition:
    """Record and time budget of a streaming read, shared by the partitions a worker process
    reads for one pipeline run (``run_id``)."""

    _lock = threading.Lock()
    _records: dict[str, int] = {}

    def __init__(self, settings: KafkaSettings, run_id: str) -> None:
        self._run_id = run_id
        self._max_records = settings.stop_after_records
        self._deadline = time.monotonic() + settings.stop_after_seconds if settings.stop_after_seconds else None

    def count(self) -> None:
        with self._lock:
            self._records[self._run_id] = self._records.get(self._run_id, 0) + 1

    def reached(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return True
        return self._max_records is not None and self._records.get(self._run_id, 0) >= self._max_records


class ReadKafkaPartitionFn(beam.DoFn):
    """Splittable DoFn reading one partition's offset range (bounded mode)."""

    def __init__(self, settings: KafkaSettings, fields: RecordFields) -> None:
        self._settings = settings
        self._fields = fields
        self._run_id = uuid.uuid4().hex  # one per pipeline construction
        self._messages = Metrics.counter(METRICS_NAMESPACE, "records_read")
        self._bad = Metrics.counter(METRICS_NAMESPACE, "parse_errors")

    def setup(self) -> None:
        self._consumer = _consumer(self._settings)
        self._stop = _StopCondition(self._settings, self._run_id)

    def teardown(self) -> None:
        self._consumer.close()

    def process(
        self,
        part: PartitionRange,
        finalizer=beam.DoFn.BundleFinalizerParam,  # positional params before the keyword ones
        tracker=beam.DoFn.RestrictionParam(_PartitionRestrictions()),
        watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ) -> Iterator[Any]:
        from confluent_kafka import KafkaException, TopicPartition

        restriction = tracker.current_restriction()
        if restriction.start >= restriction.stop:  # nothing new in this partition
            return
        partition = TopicPartition(part.topic, part.partition, restriction.start)
        # Always assign at the restriction's start: after a split or a deferral the consumer
        # may have fetched past it, and those messages belong to this restriction.
        self._consumer.assign([partition])
        next_offset = restriction.start
        stalled_since = time.monotonic()
        try:
            while True:
                if self._settings.streaming and self._stop.reached():
                    tracker.try_claim(restriction.stop)  # ends this restriction: nothing left
                    return
                self._consumer.resume([partition])
                messages = self._consumer.consume(POLL_BATCH, timeout=POLL_TIMEOUT_S)
                if messages:
                    # Paused while the batch flows downstream (inference runs in this thread):
                    # an idle consumer would keep fetching at the end of the log, and against a
                    # broker that answers empty fetches at once that busy loop takes a core from
                    # the model (measured: 25x slower on 2 cores). Resuming fetches again from
                    # the next offset after the last message consume() returned. Never paused
                    # after an empty poll: pausing drops the fetch in flight, and on a loaded
                    # worker every fetch outlasts the poll window (a stall at the next offset).
                    self._consumer.pause([partition])
                else:
                    position = max(self._consumer.position([partition])[0].offset, next_offset)
                    if position >= restriction.stop:  # only gaps (e.g. transaction markers) left
                        tracker.try_claim(restriction.stop)
                        return
                    if self._settings.streaming:
                        tracker.defer_remainder(Duration.of(1))
                        return
                    if time.monotonic() - stalled_since > STALL_TIMEOUT_S:
                        raise TimeoutError(f"no messages from {part.topic}/{part.partition} at offset "
                                           f"{position} for {STALL_TIMEOUT_S:.0f} s; end offset {restriction.stop}")
                    continue
                for message in messages:
                    if message.error() is not None:
                        raise KafkaException(message.error())
                    if not tracker.try_claim(message.offset()):
                        return
                    next_offset = message.offset() + 1
                    yield self._emit(message, part, watermark)
                    if self._settings.streaming:
                        self._stop.count()
                    if next_offset >= restriction.stop:
                        return
                # The wait for more starts now: downstream work on this batch (inference runs
                # in this thread) can take minutes on a loaded worker and is no stall.
                stalled_since = time.monotonic()
        finally:
            self._consumer.unassign()  # no fetching while this partition is not being read
            if self._settings.streaming and next_offset > restriction.start:
                finalizer.register(lambda: self._commit(part.topic, part.partition, next_offset))

    def _emit(self, message, part: PartitionRange, watermark) -> Any:
        self._messages.inc()
        kind, millis = message.timestamp()
        timestamp = Timestamp.of(millis / 1000.0) if kind and millis >= 0 else Timestamp.now()
        # Never backwards. The guard is the estimator's own state, which the runner saves
        # with the restriction and restores when it resumes it, on whichever DoFn instance.
        current = watermark.current_watermark()
        if current is None or timestamp > current:
            watermark.set_watermark(timestamp)
        element = message_to_document(message.value(), message.key(), part.topic, part.partition,
                                      message.offset(), self._fields)
        if isinstance(element, Document):
            return TimestampedValue(element, timestamp)
        self._bad.inc()
        return TaggedOutput(DEAD_LETTER_TAG, TimestampedValue(element, timestamp))

    def _commit(self, topic: str, partition: int, offset: int) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)


class _UnboundedReadKafkaPartitionFn(ReadKafkaPartitionFn):
    """The same reader with an unbounded restriction per partition (streaming mode)."""

    @beam.DoFn.unbounded_per_element()
    def process(self, part, finalizer=beam.DoFn.BundleFinalizerParam,
                tracker=beam.DoFn.RestrictionParam(_PartitionRestrictions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        yield from super().process(part, finalizer, tracker, watermark)


class ParseBeamKafkaRecords(beam.DoFn):
    """Beam ``ReadFromKafka(with_metadata=True)`` records -> documents and dead letters."""

    def __init__(self, fields: RecordFields) -> None:
        self._fields = fields

    def process(self, record) -> Iterator[Any]:
        element = message_to_document(record.value, record.key, record.topic, record.partition,
                                      record.offset, self._fields)
        yield element if isinstance(element, Document) else TaggedOutput(DEAD_LETTER_TAG, element)


class ReadKafkaDocuments(beam.PTransform):
    """Kafka -> ``Document`` elements (main output) and dead letters (``DEAD_LETTER_TAG``).

    ``partitions`` come from ``plan_partitions`` at launch (bounded mode needs the end
    offsets fixed before the job starts; the launcher commits them after success).
    """

    def __init__(self, settings: KafkaSettings, fields: RecordFields,
                 partitions: Sequence[PartitionRange] = ()) -> None:
        super().__init__()
        self._settings = settings
        self._fields = fields
        self._partitions = list(partitions)

    def beam_reader(self) -> beam.PTransform:
        """Beam's cross-language reader, configured like our streaming reader: unbounded,
        offsets committed once the runner has committed the bundle (see module docstring)."""
        from apache_beam.io.kafka import ReadFromKafka

        config = {k: str(v) for k, v in self._settings.consumer_config().items()}
        return ReadFromKafka(
            consumer_config=config,
            topics=list(self._settings.topics),
            with_metadata=True,
            commit_offset_in_finalize=True,
        )

    def expand(self, pbegin):
        if self._settings.reader == "beam":
            records = pbegin | "ReadFromKafka" >> self.beam_reader()
            return records | "Parse" >> beam.ParDo(ParseBeamKafkaRecords(self._fields)).with_outputs(
                DEAD_LETTER_TAG, main="documents")
        read_fn = (_UnboundedReadKafkaPartitionFn if self._settings.streaming else ReadKafkaPartitionFn)(
            self._settings, self._fields)
        return (
            pbegin
            | "Partitions" >> beam.Create(self._partitions)
            | "ReadPartitions" >> beam.ParDo(read_fn).with_outputs(DEAD_LETTER_TAG, main="documents")
        )
