"""Which offsets of which partitions a run reads, asked of the brokers when the job starts.

Bounded mode needs the end offsets fixed before the job runs: the job reads exactly up to
them, and the launcher commits them once the pipeline has succeeded (``offsets``). Streaming
mode takes only the start offsets; each partition's range is then open-ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference_enrich.transforms.kafka.client import KafkaUnreachable, consumer as _consumer
from inference_enrich.transforms.kafka.settings import KafkaSettings


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, stop) of one partition; ``stop`` None means unbounded (streaming)."""

    topic: str
    partition: int
    start: int
    stop: int | None


def plan_partitions(settings: KafkaSettings, timeout: float = 30.0) -> list[PartitionRange]:
    """Every partition of the topics with the offsets this run reads: from the group's
    committed offset (or earliest/latest by ``auto_offset_reset``) to the current end offset
    (bounded) or without end (streaming).

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
