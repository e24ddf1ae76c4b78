"""Publishes domain events to their catalogue topics (kafka-python producer, acks=all, idempotent)."""
from __future__ import annotations

from kafka import KafkaProducer

from topics import catalogue, events


class Publisher:
    def __init__(self, settings, linger_ms: int = 20):
        self.settings = settings
        self.producer = KafkaProducer(
            client_id="posvenda-publisher", acks="all", linger_ms=linger_ms, batch_size=256 * 1024,
            enable_idempotence=True, compression_type=None, **settings.kafka_python_config(),
        )
        self.sent = 0

    def publish(self, event: events.Event) -> None:
        topic = catalogue.for_event_family(events.event_type(event.type).family)
        key = catalogue.key_of(topic, event)
        self.publish_raw(topic, key, events.encode(event))

    def publish_raw(self, topic: catalogue.Topic, key: str | None, value: bytes) -> None:
        self.producer.send(self.settings.topic_name(topic), key=key.encode() if key else None, value=value)
        self.sent += 1

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
