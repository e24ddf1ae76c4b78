"""Order history read model ("ficha do pedido"): its table, the compacted projection topic, HTTP views.

The ORDERS handler folds every order event and every message sent for an order into the order's
timeline, publishes the order's record to projections.orders, counts newly flagged transitions, and
re-keys the order's snapshot onto customers.facts for the customer 360.
"""
from __future__ import annotations

import json

from prometheus_client import Counter

from projections import customer360, order_history_fold, visits_fold
from projections.http import keyed_view, page_of, unauthorized
from streams import handlers
from streams.app import app, settings, topic
from topics import catalogue

orders_table = app.Table("order-history", default=None, partitions=settings.partitions)

TRANSITIONS_FLAGGED = Counter(
    "posvenda_order_transitions_flagged_total",
    "Order events the state machine does not allow in the order's status (kept on the timeline, flagged).",
    ["type", "status"])
TIMELINE_EVENTS_IGNORED = Counter("posvenda_order_timeline_events_ignored_total",
                                  "Order/message events that changed nothing (duplicates, or beyond the bound).",
                                  ["type"])


def _local_day(ms: int) -> str:
    return visits_fold.local_day(ms, settings.business_timezone)


@handlers.on(handlers.ORDERS)
async def apply(event, partition: int) -> None:
    """Folds an order event or a message sent for an order into the order's timeline."""
    if not order_history_fold.relevant(event):
        return
    old = orders_table.get(event.order_id)
    new = order_history_fold.evolve(old, event)
    if new == old:
        TIMELINE_EVENTS_IGNORED.labels(event.type).inc()
        return
    seq = (old or {}).get("seq", 0) + 1
    new["seq"] = seq
    orders_table[event.order_id] = new
    before = set(order_history_fold.replay(old)["flagged"]) if old else set()
    record = order_history_fold.view(new)
    for entry in record["timeline"]:
        if entry.get("flagged") and entry["event_id"] not in before:
            TRANSITIONS_FLAGGED.labels(entry["type"], entry["from"] or "none").inc()
    await topic(catalogue.PROJECTION_ORDERS).send(key=event.order_id.encode(), value=json.dumps(record).encode())
    await customer360.forward_fact_change("order", event.order_id, seq,
                                          order_history_fold.customer_fact(old, _local_day),
                                          order_history_fold.customer_fact(new, _local_day))


@app.page("/orders/{order_id}")
async def order_view(web, request, order_id):
    """GET /orders/{order_id}: the order's status and its timeline (transitions and messages)."""
    return keyed_view(web, request, orders_table, order_id, order_history_fold.view, "order")


@app.page("/orders")
async def orders_view(web, request):
    """GET /orders?offset=&limit=[&status=][&flagged=true][&customer_id=]: orders sorted by order id."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    status, customer_id = request.query.get("status"), request.query.get("customer_id")
    flagged_only = request.query.get("flagged", "").lower() in ("1", "true", "yes")
    if status or flagged_only:
        records = {k: order_history_fold.view(v) for k, v in orders_table.items()
                   if not customer_id or v["customer_id"] == customer_id}
        keys = sorted(k for k, r in records.items()
                      if (not status or r["status"] == status) and (not flagged_only or r["flagged_count"]))
        page = page_of(request, keys)
        page["items"] = [records[k] for k in page["items"]]
        return web.json(page)
    keys = sorted(k for k, v in orders_table.items() if not customer_id or v["customer_id"] == customer_id)
    page = page_of(request, keys)
    page["items"] = [order_history_fold.view(orders_table[k]) for k in page["items"]]
    return web.json(page)
