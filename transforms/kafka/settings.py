"""What a Kafka read is configured with, checked once where the job is built.

Beam-free (only the secrets helper), so the job configuration and the CLI can build and show
settings without importing the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from inference_enrich.inference.secrets import masked, protect_secrets, reveal


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
