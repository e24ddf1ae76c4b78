"""Publishes domain events to their catalogue topics (kafka-python producer, acks=all, idempotent).

Personal fields are sealed under the customer's data key before they leave (topics/personal_data.py).
The publisher gets the customer's key from customers.keys (read once, on the first event that needs
one) or creates it, and writes a new key, synchronously, before the event that uses it: whoever reads
the event can find its key. After publishing an erasure request it deletes the key (a tombstone), so
the erasure holds even when no worker runs; the worker deletes it too (streams/customer_keys.py).
Keys are created by one publisher at a time per customer: two publishers registering the same new
customer at once would each write a key, and compaction keeps only the last one.
"""
from __future__ import annotations

import time

from kafka import KafkaProducer

from topics import catalogue, events, personal_data

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
        self._keys: dict[str, personal_data.CustomerKey] | None = None  # loaded on first need

    def publish(self, event: events.Event):
        """Queues the event; returns the send's future (raises MessageTooLarge before sending)."""
        topic = catalogue.for_event_family(events.event_type(event.type).family)
        key = catalogue.key_of(topic, event)
        if personal_data.carries_personal_data(event):
            event = personal_data.seal(event, self._key_for(event.customer_id))
        future = self.publish_raw(topic, key, events.encode(event))
        if event.type == "customer_erasure_requested" and event.customer_id:
            self.shred(event.customer_id)
        return future

    def publish_raw(self, topic: catalogue.Topic, key: str | None, value: bytes):
        key_bytes = key.encode() if key else None
        ensure_fits(self.producer, key_bytes, value)
        future = self.producer.send(self.settings.topic_name(topic), key=key_bytes, value=value)
        self.sent += 1
        return future

    def flush(self) -> None:
        """Waits until every queued send is acknowledged or has failed (its future says which)."""
        self.producer.flush()

    def _known_keys(self) -> dict[str, personal_data.CustomerKey]:
        if self._keys is None:
            from projections.rebuild import read_keys

            self._keys = read_keys(self.settings)
        return self._keys

    def _key_for(self, customer_id: str) -> personal_data.CustomerKey:
        """The customer's data key; a new one is written to customers.keys (and acknowledged) first."""
        keys = self._known_keys()
        if customer_id not in keys:
            key = personal_data.new_key(customer_id)
            self.producer.send(self.settings.topic_name(catalogue.CUSTOMER_KEYS), key=customer_id.encode(),
                               value=personal_data.key_record(key, int(time.time() * 1000))).get(self._delivery_timeout_s())
            keys[customer_id] = key
        return keys[customer_id]

    def _delivery_timeout_s(self) -> float:
        """How long a key write may wait: as long as the producer retries any send (a broker restart
        must delay a new customer's key, not fail it, exactly as it delays the events)."""
        return self.producer.config["delivery_timeout_ms"] / 1000

    def shred(self, customer_id: str) -> None:
        """Deletes the customer's data key: every sealed copy of their personal data becomes unreadable."""
        self.producer.send(self.settings.topic_name(catalogue.CUSTOMER_KEYS), key=customer_id.encode(), value=None)
        if self._keys is not None:
            self._keys.pop(customer_id, None)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
