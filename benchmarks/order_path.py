"""The order path every peer runs, as plain functions: the same work in Quix Streams and in Faust.

Per order: a timeline of (event_id, type, occurred_at), deduplicated by event id. Per customer: the
orders seen, how many order events and the latest status. JSON-ready values only, so each engine
stores them with its own serializer.
"""
from __future__ import annotations

from topics.events import Event


def order_fact(event: Event) -> dict:
    """What the order path keeps of a decoded order event."""
    return {"event_id": event.event_id, "type": event.type, "at": event.occurred_at,
            "order_id": event.order_id, "customer_id": event.customer_id or "unknown"}


def fold_timeline(timeline: list | None, fact: dict) -> list | None:
    """The order's timeline with the fact added in event time; None when the event was seen already."""
    timeline = list(timeline or ())
    if any(entry[0] == fact["event_id"] for entry in timeline):
        return None
    timeline.append([fact["event_id"], fact["type"], fact["at"]])
    timeline.sort(key=lambda entry: entry[2])
    return timeline


def fold_customer(record: dict | None, facts: list[dict]) -> dict:
    """A customer's record after a batch of its order facts (one or many)."""
    record = dict(record or {"orders": [], "events": 0, "last_at": 0, "last_type": None})
    orders = set(record["orders"])
    for fact in facts:
        orders.add(fact["order_id"])
        record["events"] += 1
        if fact["at"] >= record["last_at"]:
            record["last_at"], record["last_type"] = fact["at"], fact["type"]
    record["orders"] = sorted(orders)
    return record
