"""The Kafka source (``reader``) and its confluent-kafka consumer (``client``, Beam-free)."""
