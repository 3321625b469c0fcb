"""``reader: beam``: Beam's cross-language ``ReadFromKafka`` in place of our reader.

It needs a Java expansion service (fine on Dataflow and Flink, impossible offline) and serves
streaming jobs only: KafkaIO can neither stop at the end offsets taken at launch nor commit
them only after the job succeeded, and a record or time limit turns it into a bounded read
that commits no offsets (apache/beam#19369); ``KafkaSettings`` refuses those combinations.
Configured like our streaming reader: unbounded, offsets committed on bundle finalisation."""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from inference_enrich.transforms.documents import DEAD_LETTER_TAG, Document, RecordFields
from inference_enrich.transforms.kafka.parsing import message_to_document
from inference_enrich.transforms.kafka.settings import KafkaSettings


def beam_kafka_reader(settings: KafkaSettings) -> beam.PTransform:
    """Beam's ``ReadFromKafka`` with our consumer settings, yielding records with metadata
    (topic, partition, offset: what a dead letter names)."""
    from apache_beam.io.kafka import ReadFromKafka

    config = {k: str(v) for k, v in settings.consumer_config().items()}
    return ReadFromKafka(
        consumer_config=config,
        topics=list(settings.topics),
        with_metadata=True,
        commit_offset_in_finalize=True,
    )


class ParseBeamKafkaRecords(beam.DoFn):
    """Beam ``ReadFromKafka(with_metadata=True)`` records -> documents and dead letters."""

    def __init__(self, fields: RecordFields) -> None:
        self._fields = fields

    def process(self, record) -> Iterator[Any]:
        element = message_to_document(record.value, record.key, record.topic, record.partition,
                                      record.offset, self._fields)
        yield element if isinstance(element, Document) else TaggedOutput(DEAD_LETTER_TAG, element)
