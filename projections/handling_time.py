"""Order handling time: from order placed to order shipped, in event time, as a Prometheus histogram.

Handling time is the store's own part of a delivery (the carrier's part is logistics'), so it is what
tells "our dispatch is slow" from "the carrier is late". Events arrive late and out of order, so the
fold keeps both timestamps and observes once, when the second of them arrives, whichever it is; it
is keyed by order on the orders source group, so one partition sees all of an order's events and a
redelivered event changes nothing. A histogram sample lives in the worker's process: a redelivery
after a crash (whose table write was rolled back) can observe an order twice, which a rate over
minutes hardly notices; the table, not the metric, is the record.
"""
from __future__ import annotations

from alerts.metric_labels import bounded
from streams import handlers, metrics
from streams.app import app, settings

PAYMENT_METHODS = frozenset({"credit_card", "debit_card", "pix", "boleto"})  # anything else is "other"

handling_table = app.Table("order-handling", default=None, partitions=settings.partitions)


def empty() -> dict:
    return {"placed_at": None, "shipped_at": None, "payment_method": None, "observed": False}


def evolve(state: dict | None, event) -> dict:
    """The order's handling state after `event`: the earliest placement and shipment times seen."""
    s = dict(state or empty())
    if event.type == "order_placed":
        s["placed_at"] = event.occurred_at if s["placed_at"] is None else min(s["placed_at"], event.occurred_at)
        method = event.payload.get("payment_method")
        s["payment_method"] = method if method in PAYMENT_METHODS else "other"
    elif event.type == "order_shipped":
        s["shipped_at"] = event.occurred_at if s["shipped_at"] is None else min(s["shipped_at"], event.occurred_at)
    return s


def decide(state: dict) -> tuple[dict, float | None]:
    """(state, seconds to observe or None): an order is observed once, when both times are known.

    A shipment stamped before its placement is an impossible transition (flagged by the order
    history, not here): it is marked observed without a sample, rather than a negative duration.
    """
    if state["observed"] or state["placed_at"] is None or state["shipped_at"] is None:
        return state, None
    seconds = (state["shipped_at"] - state["placed_at"]) / 1000
    return {**state, "observed": True}, (seconds if seconds >= 0 else None)


@handlers.on(handlers.ORDERS)
async def apply(event, partition: int) -> None:
    if event.type not in ("order_placed", "order_shipped") or not event.order_id:
        return
    old = handling_table.get(event.order_id)
    new, seconds = decide(evolve(old, event))
    if new == old:
        return
    handling_table[event.order_id] = new
    if seconds is not None:
        metrics.ORDER_HANDLING.labels(bounded("payment_method", new["payment_method"])).observe(seconds)
