"""The confluent-kafka consumer our Kafka source uses, and what it reports, free of Beam (so
the CLI can name them without importing the pipeline)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from inference_enrich.transforms.kafka.settings import KafkaSettings

LIBRDKAFKA_LOGGER = "inference_enrich.librdkafka"
"""Where librdkafka's own log lines go (Python logging, not straight to stderr): an
unreachable broker makes it log every reconnection attempt, hundreds of lines a minute."""


class KafkaUnreachable(RuntimeError):
    """The brokers could not be asked for the topics' partitions and offsets."""


def consumer(settings: KafkaSettings, on_error: Callable[[Any], None] | None = None):
    """A consumer for ``settings`` whose log lines go to ``LIBRDKAFKA_LOGGER``; ``on_error``
    gets the client's errors (``KafkaError``), such as each failed connection attempt."""
    from confluent_kafka import Consumer

    config = {**settings.consumer_config(), "logger": logging.getLogger(LIBRDKAFKA_LOGGER)}
    if on_error is not None:
        config["error_cb"] = on_error
    return Consumer(config)
