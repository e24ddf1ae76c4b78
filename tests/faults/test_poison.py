"""Poison input written straight onto the topics: each message goes to its dead-letter topic with its
reason, is counted in the metrics, and nothing else is disturbed."""
from __future__ import annotations

import random
import uuid
from dataclasses import replace

from kafka import KafkaConsumer, KafkaProducer

from posvenda.simulate import generate
from tests.conftest import wait_until
from tests.faults.conftest import START_MS, assert_converges
from topics import catalogue, codec, events

YEAR_1970 = 0
YEAR_2100 = 4_102_444_800_000


def poison(valid: list[events.Event]) -> list[tuple[catalogue.Topic, bytes, bytes, str]]:
    """(topic, key, value, expected reason) for every kind of bad message."""
    order = next(e for e in valid if e.type == "order_placed")
    view = next(e for e in valid if e.type == "page_viewed")
    rng = random.Random(3)
    alert = {"alert_id": "a", "state": "raised", "rule": "r", "subject": "s", "occurred_at": START_MS,
             "severity": "warning", "summary": "x", "details": {}}
    import datetime as dt

    alert["occurred_at"] = dt.datetime.fromtimestamp(START_MS / 1000, dt.UTC)
    bad_total = replace(order, event_id=str(uuid.uuid4()), order_id="o-poison-1",
                        payload={**order.payload, "total": -150.0})
    return [
        (catalogue.VISITS, b"s-x", bytes(rng.getrandbits(8) for _ in range(64)), "bad_magic"),
        (catalogue.VISITS, b"s-x", codec.MAGIC + b"\x13" * 8 + b"\x02abc", "unknown_schema"),
        (catalogue.ORDERS, b"o-x", codec.encode("posvenda.alerts.AlertEvent", alert), "not_an_event"),
        (catalogue.ORDERS, b"o-x", events.encode(order)[:-7], "corrupt_body"),
        (catalogue.ORDERS, b"o-poison-1", events.encode(bad_total), "implausible_value"),
        (catalogue.VISITS, b"s-1970", events.encode(replace(view, event_id=str(uuid.uuid4()), session_id="s-1970",
                                                             occurred_at=YEAR_1970)), "implausible_value"),
        (catalogue.VISITS, b"s-2100", events.encode(replace(view, event_id=str(uuid.uuid4()), session_id="s-2100",
                                                             occurred_at=YEAR_2100)), "implausible_value"),
        (catalogue.CART, b"", b"", "truncated"),
    ]


def test_poison_goes_to_dead_letters_with_its_reason_and_disturbs_nothing(settings, worker_factory):
    valid = list(generate(5, 150, START_MS))
    bad = poison(valid)
    producer = KafkaProducer(**settings.kafka_python_config())

    def send_valid(batch):
        for event in batch:
            topic = catalogue.for_event_family(events.event_type(event.type).family)
            producer.send(settings.topic_name(topic), key=(catalogue.key_of(topic, event) or "").encode(),
                          value=events.encode(event))

    send_valid(valid[: len(valid) // 2])  # the poison lands in the middle of valid traffic
    for topic, key, value, _ in bad:
        producer.send(settings.topic_name(topic), key=key, value=value)
    send_valid(valid[len(valid) // 2:])
    producer.flush()
    worker = worker_factory(settings)

    expected = {}
    for topic, _, _, reason in bad:
        expected[(topic.name, reason)] = expected.get((topic.name, reason), 0) + 1
    dead = {}
    consumers = {t: KafkaConsumer(settings.topic_name(t.dead_letters), group_id=None, auto_offset_reset="earliest",
                                  consumer_timeout_ms=500, **settings.kafka_python_config())
                 for t in {t for t, *_ in bad}}

    def all_dead_letters():
        for t, consumer in consumers.items():
            for message in consumer:
                headers = dict(message.headers)
                key = (t.name, headers["dlq.reason"].decode())
                dead[key] = dead.get(key, 0) + 1
                assert headers["dlq.source.topic"].decode() == settings.topic_name(t)
                assert headers["dlq.detail"], "every dead letter says why"
        return sum(dead.values()) >= len(bad)

    wait_until(all_dead_letters, 120, what="every poison message in a dead-letter topic")
    assert dead == expected

    metrics = worker.get_text("/metrics")
    for (topic, reason), n in expected.items():
        assert f'posvenda_dead_letters_total{{reason="{reason}",topic="{topic}"}} {float(n)}' in metrics, (topic, reason)

    lines = [events.to_json(e) for e in valid]
    assert_converges(worker, lines, timeout=120)
    orders = {e.order_id for e in valid if e.type == "order_placed"}
    wait_until(lambda: worker.get("/orders?limit=1")["total"] == len(orders), 60,
               what="the order history to hold exactly the valid orders")
    for consumer in consumers.values():
        consumer.close()
