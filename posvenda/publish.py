"""Publishes domain events to their catalogue topics (kafka-python producer, acks=all, idempotent)."""
from __future__ import annotations

from kafka import KafkaProducer

from topics import catalogue, events

# Batch and record headers kafka-python adds around a key and value (v2 record format), with room to spare.
RECORD_OVERHEAD_BYTES = 128


class MessageTooLarge(ValueError):
    """An encoded event larger than the producer may send (`max_request_size`); the broker's own limit,
    `message.max.bytes` (1 MiB by default), would refuse it as well."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"the encoded event is {size:,} bytes, over the producer's max_request_size of {limit:,} bytes")
        self.size = size
        self.limit = limit


def ensure_fits(producer, key: bytes | None, value: bytes) -> None:
    """Checks a record's size before it is sent, so an oversized event is named, not a lost connection."""
    limit = producer.config["max_request_size"]
    size = len(key or b"") + len(value) + RECORD_OVERHEAD_BYTES
    if size > limit:
        raise MessageTooLarge(size, limit)


class Publisher:
    def __init__(self, settings, linger_ms: int = 20):
        self.settings = settings
        self.producer = KafkaProducer(
            client_id="posvenda-publisher", acks="all", linger_ms=linger_ms, batch_size=256 * 1024,
            enable_idempotence=True, compression_type=None, **settings.kafka_python_config(),
        )
        self.sent = 0

    def publish(self, event: events.Event):
        """Queues the event; returns the send's future (raises MessageTooLarge before sending)."""
        topic = catalogue.for_event_family(events.event_type(event.type).family)
        key = catalogue.key_of(topic, event)
        return self.publish_raw(topic, key, events.encode(event))

    def publish_raw(self, topic: catalogue.Topic, key: str | None, value: bytes):
        key_bytes = key.encode() if key else None
        ensure_fits(self.producer, key_bytes, value)
        future = self.producer.send(self.settings.topic_name(topic), key=key_bytes, value=value)
        self.sent += 1
        return future

    def flush(self) -> None:
        """Waits until every queued send is acknowledged or has failed (its future says which)."""
        self.producer.flush()

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
