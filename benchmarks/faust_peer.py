"""Runner (c): a minimal Faust app doing the order path, per event or batched (the engine's floor).

`python -m benchmarks.faust_peer worker -l warn`, configured by BENCH_* variables (see run_env()).

- per-event: each order event reads and writes its order's timeline, and sends one customer fact
  to a re-key topic keyed by customer (what `group_by` does); a second agent folds the customer
  record and sends it to the result topic.
- batched: `stream.take_events(1000, within=0.2)`; each order key is read once and written once
  per batch, each customer gets one message per batch with all its facts, and the customer agent
  folds its batches the same way.

A table picks the partition of a read and of a changelog write from the *current event*; in a
batch that is whatever event the stream saw last, so each key's own event is made current around
its read and write (`as_current`).
"""
from __future__ import annotations

import contextlib
import os
import weakref
from collections import defaultdict

import faust
from faust.streams import _current_event

from benchmarks.order_path import fold_customer, fold_timeline, order_fact
from topics import events

PREFIX = os.environ.get("BENCH_PREFIX", "bench.")
MODE = os.environ.get("BENCH_MODE", "per-event")
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
BATCH, WITHIN = 1000, 0.2


def run_env(prefix: str, mode: str, partitions: int, data_dir: str, port: int, bootstrap: str) -> dict:
    """Environment of a peer worker process."""
    return {"BENCH_PREFIX": prefix, "BENCH_MODE": mode, "BENCH_PARTITIONS": str(partitions),
            "BENCH_DATA_DIR": data_dir, "BENCH_WEB_PORT": str(port), "BENCH_BOOTSTRAP": bootstrap}


app = faust.App(
    PREFIX + "faust",
    broker="kafka://" + os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092"),
    store="rocksdb://",
    datadir=os.environ.get("BENCH_DATA_DIR", "/tmp/bench-faust"),
    processing_guarantee="at_least_once",
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    broker_session_timeout=10,
    consumer_auto_offset_reset="earliest",
    web_host="127.0.0.1",
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6198")),
    autodiscover=False,
    key_serializer="json",
    value_serializer="json",
    producer_acks=-1,
    stream_wait_empty=False,
)
orders_topic = app.topic(PREFIX + "orders.events", key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=PARTITIONS)
facts_topic = app.topic(PREFIX + "faust.customer-facts", partitions=PARTITIONS)
results_topic = app.topic(PREFIX + "faust.customers", partitions=PARTITIONS)
timelines = app.Table("timelines", default=None, partitions=PARTITIONS)
customers = app.Table("customers", default=None, partitions=PARTITIONS)


@contextlib.contextmanager
def as_current(event):
    """Makes `event` Faust's current event, so table reads and writes use its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def orders_per_event(stream):
    async for value in stream:
        fact = order_fact(events.decode(value))
        timeline = fold_timeline(timelines.get(fact["order_id"]), fact)
        if timeline is not None:
            timelines[fact["order_id"]] = timeline
            await facts_topic.send(key=fact["customer_id"], value=[fact])


async def customers_per_event(stream):
    async for customer_id, facts in stream.items():
        record = fold_customer(customers.get(customer_id), facts)
        customers[customer_id] = record
        await results_topic.send(key=customer_id, value=record)


def by_key(batch, key_and_items):
    """Groups a batch by key: {key: (the key's last Faust event, [items...])}, in arrival order."""
    grouped: dict = {}
    for event in batch:
        key, items = key_and_items(event)
        _last, collected = grouped.get(key, (event, []))
        collected.extend(items)
        grouped[key] = (event, collected)
    return grouped


def _order_key(event):
    fact = order_fact(events.decode(event.value))
    return fact["order_id"], [fact]


async def orders_batched(stream):
    async for batch in stream.take_events(BATCH, within=WITHIN):
        facts_by_customer = defaultdict(list)
        for order_id, (event, facts) in by_key(batch, _order_key).items():
            with as_current(event):
                timeline, changed = timelines.get(order_id), False
                for fact in facts:
                    folded = fold_timeline(timeline, fact)
                    if folded is not None:
                        timeline, changed = folded, True
                        facts_by_customer[fact["customer_id"]].append(fact)
                if changed:
                    timelines[order_id] = timeline
        for customer_id, facts in facts_by_customer.items():
            await facts_topic.send(key=customer_id, value=facts)


async def customers_batched(stream):
    async for batch in stream.take_events(BATCH, within=WITHIN):
        for customer_id, (event, facts) in by_key(batch, lambda e: (e.key, e.value)).items():
            with as_current(event):
                record = fold_customer(customers.get(customer_id), facts)
                customers[customer_id] = record
            await results_topic.send(key=customer_id, value=record)


if MODE == "batched":
    app.agent(orders_topic, name="orders")(orders_batched)
    app.agent(facts_topic, name="customers")(customers_batched)
else:
    app.agent(orders_topic, name="orders")(orders_per_event)
    app.agent(facts_topic, name="customers")(customers_per_event)


if __name__ == "__main__":
    app.main()
