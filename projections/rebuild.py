"""Rebuilds a projection from scratch by replaying its source topics from the start.

The live projections are pure folds (order-independent, idempotent), so a rebuild does not need a
Faust worker: it reads every source message up to the log end captured when it starts (kafka-python,
partition by partition), applies the same admission rules as the agents (undecodable, implausible or
keyless events go to dead letters there, so they are skipped here), and runs the same folds. The
session and order snapshots that live reach the customer agent through customers.facts are taken
here straight from the final session and order states (the highest seq wins live, which is the final
state). The result is what the HTTP list views return, record for record.

  visits           <- visits, cart, checkout (+ order_placed carrying a session, as sessions.order-steps)
  orders           <- orders, messages
  customers        <- the above + customers, feedback
  visitors-buyers  <- visits, cart, checkout, orders
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from projections import customer360_fold, order_history_fold, visits_fold
from topics import catalogue, events, personal_data, validation

SESSION_TOPICS = (catalogue.VISITS, catalogue.CART, catalogue.CHECKOUT)
ORDER_TOPICS = (catalogue.ORDERS, catalogue.MESSAGES)
CUSTOMER_TOPICS = (catalogue.CUSTOMERS, catalogue.FEEDBACK)
SOURCES = {
    "visits": SESSION_TOPICS + (catalogue.ORDERS,),
    "orders": ORDER_TOPICS,
    "customers": SESSION_TOPICS + ORDER_TOPICS + CUSTOMER_TOPICS,
    "visitors-buyers": SESSION_TOPICS + (catalogue.ORDERS,),
}
PROJECTION_TOPICS = {
    "visits": catalogue.PROJECTION_VISITS,
    "orders": catalogue.PROJECTION_ORDERS,
    "customers": catalogue.PROJECTION_CUSTOMERS,
    "visitors-buyers": catalogue.PROJECTION_VISITORS_BUYERS,
}
# The key an agent requires on each source (decode_or_dead_letter's key_field).
KEY_FIELD = {catalogue.VISITS: "session_id", catalogue.CART: "session_id", catalogue.CHECKOUT: "session_id",
             catalogue.ORDERS: "order_id", catalogue.MESSAGES: None, catalogue.CUSTOMERS: "customer_id",
             catalogue.FEEDBACK: "customer_id"}


@dataclass(frozen=True)
class Replayed:
    topic: catalogue.Topic
    partition: int
    offset: int
    event: events.Event


def admitted(topic: catalogue.Topic, value: bytes, now_ms: int) -> events.Event | None:
    """The event when the live agent would fold it, else None (it went to the dead letters)."""
    outcome = validation.verdict(value, now_ms, KEY_FIELD[topic])  # the agents' own verdict
    return outcome if isinstance(outcome, events.Event) else None


class MissingTopics(LookupError):
    """Topics to read are not on the cluster: the message says which and what to check."""


def _read_to_end(settings, topics, on_message, progress=None) -> None:
    """Calls on_message(topic, message) for every message of `topics`, partition by partition, up to
    the log end captured at the start (kafka-python, no consumer group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id="posvenda-rebuild", isolation_level="read_committed",
                             **settings.kafka_python_config())
    try:
        by_name = {settings.topic_name(t): t for t in topics}
        missing = sorted(name for name in by_name if not consumer.partitions_for_topic(name))
        if missing:
            raise MissingTopics(f"{', '.join(missing)} not found on {settings.bootstrap_servers}: run `posvenda topics "
                                f"create`, and check POSVENDA_TOPIC_PREFIX ({settings.topic_prefix!r})")
        partitions = [TopicPartition(name, p) for name in by_name for p in sorted(consumer.partitions_for_topic(name))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > begin[tp]}
        if progress is not None:
            progress.reset(total=sum(end[tp] - begin[tp] for tp in partitions))
        while remaining:
            for tp, messages in consumer.poll(timeout_ms=1000, max_records=5000).items():
                if tp not in remaining:
                    continue
                for m in messages:
                    if m.offset >= end[tp]:
                        break
                    on_message(by_name[tp.topic], m)
                    if progress is not None:
                        progress.update(1)
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()


def read_log(settings, topics, progress=None) -> list[Replayed]:
    """Every admitted event of `topics`, partition by partition, up to the log end at the start."""
    now_ms = int(time.time() * 1000)
    out: list[Replayed] = []

    def keep(topic, m) -> None:
        event = admitted(topic, m.value, now_ms)
        if event is not None:
            out.append(Replayed(topic, m.partition, m.offset, event))

    _read_to_end(settings, topics, keep, progress)
    out.sort(key=lambda r: (r.topic.name, r.partition, r.offset))
    return reveal_personal_data(settings, out)


def reveal_personal_data(settings, log: list[Replayed]) -> list[Replayed]:
    """The log with personal fields opened with the customers' data keys; an erased customer's fields
    are left out. Keys are read after the log, so every key written before its event is there."""
    if not any(personal_data.PERSONAL_FIELDS.get(r.event.type) for r in log):
        return log
    keys = read_keys(settings)
    return [replace(r, event=personal_data.reveal(r.event, keys.get(r.event.customer_id))) for r in log]


def read_keys(settings) -> dict[str, personal_data.CustomerKey]:
    """The customers' data keys on customers.keys now (an erased customer has none)."""
    keys = {cid: personal_data.key_from_record(record)
            for cid, record in read_latest(settings, catalogue.CUSTOMER_KEYS).items()}
    return {cid: key for cid, key in keys.items() if key is not None}


def read_latest(settings, topic: catalogue.Topic, progress=None) -> dict[str, dict]:
    """A compacted projection topic as downstream systems see it: the newest record per key (a
    tombstone removes the key), as the workers have published them so far."""
    latest: dict[str, dict | None] = {}

    def keep(_topic, m) -> None:
        latest[m.key.decode()] = json.loads(m.value) if m.value is not None else None

    _read_to_end(settings, (topic,), keep, progress)
    return {k: v for k, v in latest.items() if v is not None}


# --- the folds over the replayed log -----------------------------------------------------------

def fold_sessions(log: list[Replayed]) -> dict[str, dict]:
    """Final session states; order_placed joins a session when it names it (sessions.order-steps)."""
    states: dict[str, dict] = {}
    for r in log:
        e = r.event
        if r.topic is catalogue.ORDERS and not (e.type == "order_placed" and e.session_id):
            continue
        if r.topic not in SESSION_TOPICS + (catalogue.ORDERS,) or visits_fold.ignores(e):
            continue
        states[e.session_id] = visits_fold.evolve(states.get(e.session_id), e)
    return states


def fold_orders(log: list[Replayed]) -> dict[str, dict]:
    states: dict[str, dict] = {}
    for r in log:
        if r.topic in ORDER_TOPICS and order_history_fold.relevant(r.event):
            states[r.event.order_id] = order_history_fold.evolve(states.get(r.event.order_id), r.event)
    return states


def fold_customers(log: list[Replayed], timezone: str, sessions=None, orders=None) -> dict[str, dict]:
    sessions = fold_sessions(log) if sessions is None else sessions
    orders = fold_orders(log) if orders is None else orders
    states: dict[str, dict] = {}
    for r in log:
        if r.topic in CUSTOMER_TOPICS and r.event.customer_id:
            states[r.event.customer_id] = customer360_fold.apply_event(states.get(r.event.customer_id), r.event)
    facts = [("session", sid, visits_fold.customer_fact(s, timezone)) for sid, s in sessions.items()]
    facts += [("order", oid, order_history_fold.customer_fact(o, lambda ms: visits_fold.local_day(ms, timezone)))
              for oid, o in orders.items()]
    for kind, entity_id, fact in facts:
        if fact is not None:
            message = customer360_fold.fact_message(kind, entity_id, fact["customer_id"], 1, fact)
            states[fact["customer_id"]] = customer360_fold.apply_fact(states.get(fact["customer_id"]), message)
    return states


def visitor_counts(log: list[Replayed], timezone: str) -> dict[tuple[str, str], int]:
    sessions = fold_sessions(log)
    counts: dict[tuple[str, str], int] = {}
    cells = [visits_fold.anonymous_cells(s, timezone) for s in sessions.values()]
    cells += [customer360_fold.cells(c) for c in fold_customers(log, timezone, sessions=sessions).values()]
    for group in cells:
        for cell in group:
            counts[cell] = counts.get(cell, 0) + 1
    return counts


def rebuild(name: str, log: list[Replayed], timezone: str):
    """The projection `name` from the replayed log: {key: record} (visitors-buyers: the report)."""
    if name == "visits":
        return {k: visits_fold.view(s) for k, s in sorted(fold_sessions(log).items())}
    if name == "orders":
        return {k: order_history_fold.view(s) for k, s in sorted(fold_orders(log).items())}
    if name == "customers":
        return {k: customer360_fold.view(s) for k, s in sorted(fold_customers(log, timezone).items())
                if customer360_fold.shown(s)}
    if name == "visitors-buyers":
        return visits_fold.report(visitor_counts(log, timezone))
    raise KeyError(f"unknown projection {name!r} (one of {sorted(SOURCES)})")


def republish(settings, name: str, records: dict) -> int:
    """Writes the rebuilt records to the projection's compacted topic (same keys as live)."""
    from kafka import KafkaProducer

    if name == "visitors-buyers":
        raise ValueError("projections.visitors-buyers holds per-partition partials; it is not republished")
    producer = KafkaProducer(client_id="posvenda-rebuild", acks="all", linger_ms=20,
                             **settings.kafka_python_config())
    try:
        for key, record in records.items():
            producer.send(settings.topic_name(PROJECTION_TOPICS[name]), key=key.encode(),
                          value=json.dumps(record).encode())
        producer.flush()
    finally:
        producer.close()
    return len(records)
