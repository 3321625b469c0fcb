"""The Kafka source: documents from Kafka topics, read exactly once per successful run.

Bounded mode (scheduled batch jobs, the default): when the job starts, ``plan_partitions``
takes, per partition, the group's committed offset (or earliest/latest by
``auto_offset_reset``) and the current end offset; the job reads exactly that range, and
``commit_end_offsets`` commits the end offsets for the group only after the pipeline has
succeeded. A failed run is simply run again; a successful re-run reads only newer messages.
Streaming mode reads without end and commits offsets by bundle finalisation.

The modules, one job each: ``settings`` (what a read is configured with), ``client`` (the
confluent-kafka consumer), ``partitions`` (planning the offsets a run reads), ``offsets``
(committing them), ``parsing`` (a message as a document or a dead letter), ``restriction``
(a partition's offsets as a splittable restriction), ``stop_budget`` (when a streaming read
ends), ``reader`` (the splittable DoFn and the ``ReadKafkaDocuments`` composite) and
``cross_language`` (``reader: beam``, Beam's ``ReadFromKafka``).

This package's own names are Beam-free, so the job configuration and the CLI import them
without loading Beam; the Beam transforms are in ``reader``.
"""

from inference_enrich.transforms.kafka.client import LIBRDKAFKA_LOGGER, KafkaUnreachable
from inference_enrich.transforms.kafka.offsets import commit_end_offsets
from inference_enrich.transforms.kafka.partitions import PartitionRange, plan_partitions
from inference_enrich.transforms.kafka.settings import KafkaSettings

__all__ = [
    "KafkaSettings",
    "KafkaUnreachable",
    "LIBRDKAFKA_LOGGER",
    "PartitionRange",
    "commit_end_offsets",
    "plan_partitions",
]
