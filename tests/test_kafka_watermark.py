"""Issue #21, item 6: the streaming Kafka reader's "watermark never moves back" guard
survives a restriction resumed on another DoFn instance.

A runner resumes a deferred restriction with the watermark estimator state it saved (for
``ManualWatermarkEstimator``, the last watermark set), possibly on a new DoFn instance. The
guard used to live in the instance, so a new instance that then saw an older record
timestamp called ``set_watermark`` with it, which raises: every retry raised again and the
stream stalled. Real broker (noida-db), real records with explicit timestamps."""

from __future__ import annotations

import uuid

import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.utils.timestamp import Timestamp
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from inference_enrich.transforms.documents import RecordFields
from inference_enrich.transforms.kafka import KafkaSettings, PartitionRange
from inference_enrich.transforms.kafka.reader import ReadKafkaPartitionFn

pytestmark = pytest.mark.kafka


class BundleFinalizer:
    """What a runner passes as ``BundleFinalizerParam``: callbacks to run after the commit."""

    def __init__(self) -> None:
        self.callbacks = []

    def register(self, callback) -> None:
        self.callbacks.append(callback)


def read_with(read_fn: ReadKafkaPartitionFn, part: PartitionRange, start: int, stop: int,
              estimator: ManualWatermarkEstimator) -> int:
    tracker = OffsetRestrictionTracker(OffsetRange(start, stop))
    count = sum(1 for _ in read_fn.process(part, BundleFinalizer(), tracker, estimator))
    tracker.check_done()
    return count


def test_a_restriction_resumed_on_a_new_instance_never_moves_the_watermark_back(kafka_bootstrap):
    topic = f"wm-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    # Timestamps out of order, as producers with skewed clocks write them.
    for offset, millis in enumerate([1_000_000, 5_000_000, 2_000_000, 3_000_000]):
        producer.produce(topic, value=b'{"text": "whales"}', partition=0, timestamp=millis)
    producer.flush(30)
    settings = KafkaSettings(kafka_bootstrap, (topic,), "wm-test", streaming=True)
    part = PartitionRange(topic, 0, 0, None)

    first = ReadKafkaPartitionFn(settings, RecordFields())
    first.setup()
    try:
        estimator = ManualWatermarkEstimator(None)
        assert read_with(first, part, 0, 2, estimator) == 2
        saved = estimator.get_estimator_state()  # what the runner keeps for the resumed restriction
        assert saved == Timestamp.of(5_000)
    finally:
        first.teardown()

    resumed = ReadKafkaPartitionFn(settings, RecordFields())  # a new instance, as after a move
    resumed.setup()
    try:
        estimator = ManualWatermarkEstimator(saved)
        assert read_with(resumed, part, 2, 4, estimator) == 2  # raised ValueError before
        assert estimator.current_watermark() == Timestamp.of(5_000)  # never moved back
    finally:
        resumed.teardown()
