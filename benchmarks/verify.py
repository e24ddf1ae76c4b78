"""Checks a peer's result topic against the source events, so a fast peer is also a correct one.

Expected per customer, computed straight from the published order events: how many distinct order
events (by event id) and which orders. The peer's latest record per customer must say the same.
"""
from __future__ import annotations

import json
from collections import defaultdict

from kafka import KafkaConsumer

from benchmarks.drain import RunnerFailed
from topics import catalogue, events


def expected_customers(messages) -> dict[str, tuple[int, list[str]]]:
    seen, orders = defaultdict(set), defaultdict(set)
    for topic, _key, value in messages:
        if topic is catalogue.ORDERS:
            event = events.decode(value)
            customer = event.customer_id or "unknown"
            seen[customer].add(event.event_id)
            orders[customer].add(event.order_id)
    return {c: (len(seen[c]), sorted(orders[c])) for c in seen}


def latest_records(settings, topic: str, expected_messages: int) -> dict[str, dict]:
    consumer = KafkaConsumer(topic, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000, **settings.kafka_python_config())
    latest, n = {}, 0
    try:
        for message in consumer:
            key = message.key.decode()
            latest[json.loads(key) if key.startswith('"') else key] = json.loads(message.value)
            n += 1
            if n >= expected_messages:
                break
    finally:
        consumer.close()
    return latest


def difference(expected: dict[str, tuple[int, list[str]]], actual: dict[str, dict]) -> str | None:
    """The first way the peer's records differ from the events, or None when they agree."""
    if set(actual) != set(expected):
        missing, extra = set(expected) - set(actual), set(actual) - set(expected)
        return (f"{len(missing)} customers missing (e.g. {sorted(missing)[:1]}), "
                f"{len(extra)} unexpected (e.g. {sorted(extra)[:1]})")
    for customer, (count, orders) in sorted(expected.items()):
        record = actual[customer]
        if record["events"] != count or record["orders"] != orders:
            return (f"customer {customer}: {record['events']} events / {len(record['orders'])} orders, "
                    f"expected {count} / {len(orders)}")
    return None


def check_customers(settings, topic: str, messages: int, dataset) -> None:
    """Raises RunnerFailed naming the first customer whose record differs from the events."""
    problem = difference(expected_customers(dataset.messages), latest_records(settings, topic, messages))
    if problem:
        raise RunnerFailed(f"{topic}: {problem}")
