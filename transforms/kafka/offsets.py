"""Committing the group's offsets, and only once what was read before them is safe.

Bounded mode commits each partition's planned end after the whole pipeline has succeeded (a
failed run is simply run again; a successful re-run reads only newer messages). Streaming
mode commits a partition's next offset when the runner finalises a bundle, i.e. after it has
durably committed the bundle's output. Both wait for the broker's answer, so a commit that
fails raises where it was asked for."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from inference_enrich.transforms.kafka.client import consumer as _consumer
from inference_enrich.transforms.kafka.partitions import PartitionRange
from inference_enrich.transforms.kafka.settings import KafkaSettings


def commit_offsets(consumer: Any, offsets: Iterable[tuple[str, int, int]]) -> None:
    """Commit (topic, partition, next offset to read) for the consumer's group, waiting for it."""
    from confluent_kafka import TopicPartition

    consumer.commit(offsets=[TopicPartition(*offset) for offset in offsets], asynchronous=False)


def commit_end_offsets(settings: KafkaSettings, ranges: Sequence[PartitionRange]) -> None:
    """Commit each range's end for the group (bounded mode, after the pipeline succeeded)."""
    offsets = [(r.topic, r.partition, r.stop) for r in ranges if r.stop is not None]
    if not offsets:
        return
    consumer = _consumer(settings)
    try:
        commit_offsets(consumer, offsets)
    finally:
        consumer.close()
