"""Poison input written straight onto the topics: each message goes to its dead-letter topic with its
reason, is counted in the metrics, and nothing else is disturbed; hostile ingest files publish every
valid line and name every other one."""
from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import replace

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from posvenda.ingest import ingest
from posvenda.publish import Publisher
from posvenda.simulate import generate
from tests.conftest import wait_until
from tests.faults.conftest import START_MS, assert_converges
from tests.unit.test_ingest_hostile import VALID, mixed_files
from topics import catalogue, codec, events

YEAR_1970 = 0
YEAR_2100 = 4_102_444_800_000
# An order of one product 50,000 times: its Avro event (~800 KB) is under every size limit, but the
# order history's record lists the products (~2 MB of JSON), more than the worker's producer may send.
HUGE_ORDER_ITEMS = 50_000


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
    return [*_non_finite(order), _unfoldable(order), 
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


def _non_finite(order: events.Event) -> list[tuple[catalogue.Topic, bytes, bytes, str]]:
    """NaN, Infinity and 1e308 amounts, as raw Avro (ingest would refuse them): a producer bypassing it."""
    out = []
    for n, value in enumerate((math.nan, math.inf, 1e308)):
        order_id = f"o-poison-amount-{n}"
        charge = events.Event(str(uuid.uuid4()), "payment_pending", order.occurred_at + 1000, "psp", None,
                              order.customer_id, order_id, {"charge_id": f"{order_id}-c", "method": "boleto",
                                                             "amount": value, "due_at": order.occurred_at + 86_400_000})
        placed = replace(order, event_id=str(uuid.uuid4()), order_id=order_id, session_id=None,
                         payload={**order.payload, "total": value})
        out += [(catalogue.ORDERS, order_id.encode(), events.encode(e), "implausible_value") for e in (charge, placed)]
    return out


def _unfoldable(order: events.Event) -> tuple[catalogue.Topic, bytes, bytes, str]:
    """A valid order no read model can hold: its handlers run, then the unit refuses the oversized write."""
    items = [{"product_id": "p-0001", "quantity": 1, "unit_price": 1.0}] * HUGE_ORDER_ITEMS
    huge = replace(order, event_id=str(uuid.uuid4()), order_id="o-poison-huge", session_id=None,
                   payload={**order.payload, "items": items, "total": float(HUGE_ORDER_ITEMS)})
    return catalogue.ORDERS, b"o-poison-huge", events.encode(huge), "handler_error"


def changelog_partitions_follow_the_source(settings, table: str, source: catalogue.Topic) -> int:
    """Asserts every changelog record of `table` sits in the partition of its key's source messages
    (Faust takes it from the current event; the unit of work applies writes inside that event)."""
    consumer = KafkaConsumer(group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=2000,
                             **settings.kafka_python_config())
    source_partition = {}
    for record in _read_all(consumer, settings.topic_name(source)):
        source_partition.setdefault(record.key.decode(), record.partition)
    checked = 0
    for record in _read_all(consumer, f"{settings.app_id}-{table}-changelog"):
        key = json.loads(record.key)
        if key in source_partition:
            assert record.partition == source_partition[key], (table, key, record.partition)
            checked += 1
    consumer.close()
    return checked


def _read_all(consumer, topic: str):
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for tp_records in consumer.poll(timeout_ms=1000).values():
            yield from tp_records


def assert_latency_is_from_arrival(metrics_text: str, topic: str) -> None:
    """The events occurred in March 2025 but reached Kafka during the test: processing latency (from
    arrival) stays under an hour, while the event-time delay sees them over a year old."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, s.labels.get("le")): s.value for family in text_string_to_metric_families(metrics_text)
               for s in family.samples if s.labels.get("topic") == topic}
    arrived = samples[("posvenda_processing_latency_seconds_count", None)]
    assert arrived > 0 and samples[("posvenda_processing_latency_seconds_bucket", "3600.0")] == arrived
    assert samples[("posvenda_event_time_delay_seconds_count", None)] == arrived
    assert samples[("posvenda_event_time_delay_seconds_bucket", "3.1536e+07")] == 0


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
    # After every valid event: one order_placed again as it was, and once more under its id with another total.
    first_order = next(e for e in valid if e.type == "order_placed")
    conflicting = replace(first_order, payload={**first_order.payload, "total": first_order.payload["total"] + 1000})
    send_valid([first_order])
    producer.send(settings.topic_name(catalogue.ORDERS), key=first_order.order_id.encode(),
                  value=events.encode(conflicting))
    bad = [*bad, (catalogue.ORDERS, b"", b"", "conflicting_duplicate")]
    producer.flush()
    worker = worker_factory(settings)

    expected = {}
    for topic, _, _, reason in bad:
        expected[(topic.name, reason)] = expected.get((topic.name, reason), 0) + 1
    dead, details = {}, {}
    consumers = {t: KafkaConsumer(settings.topic_name(t.dead_letters), group_id=None, auto_offset_reset="earliest",
                                  consumer_timeout_ms=500, **settings.kafka_python_config())
                 for t in {t for t, *_ in bad}}

    def all_dead_letters():
        for t, consumer in consumers.items():
            for message in consumer:
                headers = dict(message.headers)
                key = (t.name, headers["dlq.reason"].decode())
                dead[key] = dead.get(key, 0) + 1
                details.setdefault(key, []).append(headers["dlq.detail"].decode())
                assert headers["dlq.source.topic"].decode() == settings.topic_name(t)
                assert headers["dlq.detail"], "every dead letter says why"
        return sum(dead.values()) >= len(bad)

    wait_until(all_dead_letters, 120, what="every poison message in a dead-letter topic")
    assert dead == expected
    (unfoldable,) = details[("orders.events", "handler_error")]
    assert unfoldable.startswith("OversizedOutput: a write to table "), unfoldable
    assert all(e.customer_id not in unfoldable for e in valid if e.customer_id), "no personal data in the detail"
    assert all("finite" in d or "beyond the plausible maximum" in d or "negative" in d
               for d in details[("orders.events", "implausible_value")]), details

    metrics = worker.get_text("/metrics")
    for (topic, reason), n in expected.items():
        assert f'posvenda_dead_letters_total{{reason="{reason}",topic="{topic}"}} {float(n)}' in metrics, (topic, reason)
    assert 'posvenda_handler_errors_total{topic="orders.events"} 1.0' in metrics
    assert 'posvenda_duplicate_events_total{topic="orders.events"} 1.0' in metrics
    (conflict,) = details[("orders.events", "conflicting_duplicate")]
    assert f"event_id {first_order.event_id} was already folded with other content" in conflict

    lines = [events.to_json(e) for e in valid]
    assert_converges(worker, lines, timeout=120)
    orders = {e.order_id for e in valid if e.type == "order_placed"}
    wait_until(lambda: worker.get("/orders?limit=1")["total"] == len(orders), 60,
               what="the order history to hold exactly the valid orders")
    listed = {o["order_id"] for o in worker.get(f"/orders?limit={len(orders) + 10}")["items"]}
    assert listed == orders, "no poison order in the history, every valid one there"
    assert worker.get(f"/orders/{first_order.order_id}")["total"] == first_order.payload["total"]
    assert changelog_partitions_follow_the_source(settings, "order-history", catalogue.ORDERS) > 0
    assert_latency_is_from_arrival(worker.get_text("/metrics"), "visits.events")  # every visit folded by now
    for consumer in consumers.values():
        consumer.close()


def _special_lines(feedback_limit: int) -> list[tuple[bytes, str, str]]:
    """(line, field, reason part): one over the producer's limit, one the broker refuses."""
    order = next(v for v in VALID if v["type"] == "order_placed")
    oversized = {**order, "event_id": str(uuid.uuid4()), "payload": {**order["payload"], "city": "x" * 2_000_000}}
    answer = {"event_id": str(uuid.uuid4()), "type": "nps_answered", "occurred_at": "2025-03-10T13:00:00Z",
              "source": "crm", "customer_id": "c-hostile", "payload": {"score": 9, "comment": "y" * 2 * feedback_limit}}
    return [(json.dumps(oversized).encode(), "payload.city", "max_request_size of 1,048,576 bytes"),
            (json.dumps(answer).encode(), "(send)", "MessageSizeTooLarge")]


def _limit_message_size(settings, topic: catalogue.Topic, limit: int) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topic_name(topic),
                                            configs={"max.message.bytes": str(limit)})])
    finally:
        admin.close()


def _event_ids_on(settings, topics) -> set[str]:
    consumer = KafkaConsumer(group_id=None, auto_offset_reset="earliest", **settings.kafka_python_config())
    try:
        return {events.decode(r.value).event_id for t in topics for r in _read_all(consumer, settings.topic_name(t))}
    finally:
        consumer.close()


def test_a_hostile_file_publishes_every_valid_line_and_names_every_other(settings, tmp_path):
    """Given files of hostile lines mixed with valid ones (hypothesis), one line too large for the
    producer and one the broker refuses (feedback.events limited to 2,000 bytes), when each is ingested:
    every bad line is named, "published" counts acknowledged sends, and the topics hold exactly the
    valid lines."""
    feedback_limit = 2000
    _limit_message_size(settings, catalogue.FEEDBACK, feedback_limit)
    published: set[str] = set()
    path = tmp_path / "hostile.jsonl"

    @hsettings(max_examples=4, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mixed_files)
    def ingest_one(lines):
        special = _special_lines(feedback_limit)
        path.write_bytes(b"\n".join([*(line.raw for line in lines), *(raw for raw, _, _ in special)]) + b"\n")
        with Publisher(settings) as publisher:
            result = ingest(path, publisher)
        by_line = {r.line: r for r in result.rejected}
        bad = {n for n, line in enumerate(lines, start=1) if line.event_id is None}
        assert set(by_line) == bad | {len(lines) + 1, len(lines) + 2}, result.rejected
        for n, (_, field, reason) in enumerate(special, start=len(lines) + 1):
            assert by_line[n].field == field and reason in by_line[n].reason, by_line[n]
        valid = {line.event_id for line in lines if line.event_id}
        assert result.published == len(valid)
        published.update(valid)

    ingest_one()
    wait_until(lambda: _event_ids_on(settings, catalogue.SOURCE_TOPICS) >= published, 60,
               what="every valid line on its topic")
    assert _event_ids_on(settings, catalogue.SOURCE_TOPICS) == published, "nothing but the valid lines"
