"""Read documents from Kafka in Beam: a splittable DoFn per (topic, partition), on every runner.

A bounded read covers the offsets ``plan_partitions`` fixed at launch. A streaming read has
an unbounded restriction per partition: output timestamps are the records' timestamps, the
watermark follows them and never moves backwards, and offsets are committed by bundle
finalisation. When a partition is drained the DoFn defers the rest of its restriction and is
resumed a second later, until the job is cancelled or its ``StopBudget`` is spent.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from inference_enrich.transforms.documents import DEAD_LETTER_TAG, Document, RecordFields
from inference_enrich.transforms.kafka.client import consumer as _consumer
from inference_enrich.transforms.kafka.cross_language import ParseBeamKafkaRecords, beam_kafka_reader
from inference_enrich.transforms.kafka.offsets import commit_offsets
from inference_enrich.transforms.kafka.parsing import message_to_document
from inference_enrich.transforms.kafka.partitions import PartitionRange
from inference_enrich.transforms.kafka.restriction import PartitionRestrictions
from inference_enrich.transforms.kafka.settings import KafkaSettings
from inference_enrich.transforms.kafka.stop_budget import StopBudget
from inference_enrich.transforms.metrics import StepMetrics

POLL_BATCH = 500
POLL_TIMEOUT_S = 0.05  # short: consume() waits the whole timeout unless POLL_BATCH arrive
STALL_TIMEOUT_S = 120.0


class ReadKafkaPartitionFn(beam.DoFn):
    """Splittable DoFn reading one partition's offset range (bounded mode)."""

    def __init__(self, settings: KafkaSettings, fields: RecordFields) -> None:
        self._settings = settings
        self._fields = fields
        self._run_id = uuid.uuid4().hex  # one per pipeline construction
        self._metrics = StepMetrics(["records_read", "parse_errors"])

    def setup(self) -> None:
        self._consumer = _consumer(self._settings)
        self._stop = StopBudget(self._settings, self._run_id)

    def teardown(self) -> None:
        self._consumer.close()

    def process(
        self,
        part: PartitionRange,
        finalizer=beam.DoFn.BundleFinalizerParam,  # positional params before the keyword ones
        tracker=beam.DoFn.RestrictionParam(PartitionRestrictions()),
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
        self._metrics.inc("records_read")
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
        self._metrics.inc("parse_errors")
        return TaggedOutput(DEAD_LETTER_TAG, TimestampedValue(element, timestamp))

    def _commit(self, topic: str, partition: int, offset: int) -> None:
        commit_offsets(self._consumer, [(topic, partition, offset)])


class _UnboundedReadKafkaPartitionFn(ReadKafkaPartitionFn):
    """The same reader with an unbounded restriction per partition (streaming mode)."""

    @beam.DoFn.unbounded_per_element()
    def process(self, part, finalizer=beam.DoFn.BundleFinalizerParam,
                tracker=beam.DoFn.RestrictionParam(PartitionRestrictions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        yield from super().process(part, finalizer, tracker, watermark)


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
        """Beam's cross-language reader for these settings (``reader: beam``, cross_language.py)."""
        return beam_kafka_reader(self._settings)

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
