"""The order history ("ficha do pedido") as a pure fold: an event-time timeline replayed through an
explicit state machine.

The state keeps the order's events (bounded, deduplicated by event_id) sorted by event time; the
order's status is *recomputed* by replaying that sorted list through TRANSITIONS on every change. So
a late event is placed where it happened and the result does not depend on arrival order. A
transition the machine does not allow (delivered before shipped, paid twice, anything after
cancelled) stays on the timeline, flagged with the reason, and leaves the status where it was.
Every message_sent for the order is an audit-log entry on the same timeline.
"""
from __future__ import annotations

import bisect

MAX_TIMELINE_EVENTS = 500  # the earliest ones are kept: bounded state, still order-independent

# Event type -> status it leads to.
TARGET = {
    "order_placed": "placed",
    "payment_pending": "payment_pending",
    "order_paid": "paid",
    "payment_expired": "payment_expired",
    "payment_failed": "payment_failed",
    "order_invoiced": "invoiced",
    "order_shipped": "shipped",
    "order_delivered": "delivered",
    "order_cancelled": "cancelled",
    "return_requested": "return_requested",
    "order_returned": "returned",
    "order_refunded": "refunded",
}
ORDER_TYPES = frozenset(TARGET)
MESSAGE_TYPES = frozenset({"message_sent"})

AWAITING_PAYMENT = frozenset({"placed", "payment_pending", "payment_expired", "payment_failed"})
PRE_SHIPMENT = AWAITING_PAYMENT | {"paid", "invoiced"}

# Status -> event types allowed from it. None is "no order yet".
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({"order_placed"}),
    # a new charge may be issued after one expired or failed; a boleto may be confirmed after its due date
    "placed": frozenset({"payment_pending", "order_paid", "payment_failed", "order_cancelled"}),
    "payment_pending": frozenset({"payment_pending", "order_paid", "payment_expired", "payment_failed",
                                  "order_cancelled"}),
    "payment_expired": frozenset({"payment_pending", "order_paid", "order_cancelled"}),
    "payment_failed": frozenset({"payment_pending", "order_paid", "payment_failed", "order_cancelled"}),
    "paid": frozenset({"order_invoiced", "order_shipped", "order_cancelled"}),
    "invoiced": frozenset({"order_shipped", "order_cancelled"}),
    "shipped": frozenset({"order_delivered"}),
    "delivered": frozenset({"return_requested"}),
    "return_requested": frozenset({"order_returned"}),
    "returned": frozenset({"order_refunded"}),
    "cancelled": frozenset({"order_refunded"}),  # only when it had been paid: see _reason
    "refunded": frozenset(),
}

# Rank in the lifecycle: orders events that share a millisecond (placed and payment pending, say).
RANK = {name: i for i, name in enumerate(TARGET)}
RANK["message_sent"] = len(RANK)

# Payload fields worth showing on the timeline (no personal data: `receiver` of a delivery is a name).
DETAIL_FIELDS = {
    "order_placed": ("total", "freight", "payment_method", "installments", "uf", "carrier",
                     "promised_delivery_at"),
    "payment_pending": ("charge_id", "method", "amount", "due_at"),
    "order_paid": ("charge_id", "method", "amount"),
    "payment_expired": ("charge_id", "method"),
    "payment_failed": ("method", "reason"),
    "order_invoiced": ("invoice_number",),
    "order_shipped": ("carrier", "tracking_code"),
    "order_delivered": (),
    "order_cancelled": ("reason",),
    "return_requested": ("reason",),
    "order_returned": ("reason",),
    "order_refunded": ("amount",),
    "message_sent": ("channel", "template", "phase", "action_id"),
}


def empty(order_id: str) -> dict:
    return {"order_id": order_id, "customer_id": None, "session_id": None, "events": []}


def relevant(event) -> bool:
    return bool(event.order_id) and (event.type in ORDER_TYPES or event.type in MESSAGE_TYPES)


def _entry(event) -> list:
    details = {name: event.payload.get(name) for name in DETAIL_FIELDS[event.type]}
    if event.type in ("order_placed", "return_requested", "order_returned"):
        details["items"] = sum(item["quantity"] for item in event.payload["items"])
    if event.type == "order_placed":  # which products, for the replenishment reminders
        details["products"] = [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in event.payload["items"]]
    return [event.occurred_at, RANK[event.type], event.event_id, event.type, details]


def evolve(state: dict | None, event) -> dict:
    """The order's state after `event` (an orders or messages event of this order); a new dict."""
    s = dict(state or empty(event.order_id))
    if not relevant(event) or any(e[2] == event.event_id for e in s["events"]):
        return s
    entry = _entry(event)
    events = s["events"]
    index = bisect.bisect_left(events, entry[:3], key=lambda e: e[:3])
    if len(events) >= MAX_TIMELINE_EVENTS and index >= len(events):
        return s
    s["events"] = [*events[:index], entry, *events[index:]][:MAX_TIMELINE_EVENTS]
    if event.customer_id and event.type in ORDER_TYPES and (s["customer_id"] is None or event.customer_id < s["customer_id"]):
        s["customer_id"] = event.customer_id
    if event.session_id and event.type == "order_placed":
        s["session_id"] = event.session_id
    return s


def _reason(status: str | None, event_type: str, paid: bool) -> str | None:
    """Why `event_type` cannot happen in `status`, or None when the machine allows it."""
    if event_type in TRANSITIONS[status] and not (status == "cancelled" and not paid):
        return None
    if status is None:
        return f"{event_type} before order_placed"
    if event_type == "order_placed":
        return "order placed twice"
    if event_type == "order_paid" and paid:
        return "paid twice"
    if status in ("cancelled", "refunded"):
        return f"{event_type} after {status}"
    if event_type == "order_cancelled":
        return f"cancelled after {status} (only before shipment)"
    if event_type == "order_delivered" and status in PRE_SHIPMENT:
        return f"delivered before shipped (status {status})"
    return f"{event_type} not allowed in status {status}"


def replay(state: dict) -> dict:
    """Replays the sorted events: status, what the order reached, and the annotated timeline."""
    status, paid = None, False
    reached: set[str] = set()
    timeline, flagged = [], []
    methods: set[str] = set()
    placed: dict = {}
    for at, _rank, event_id, event_type, details in state["events"]:
        item = {"at": at, "event_id": event_id, "type": event_type, "details": details}
        if event_type in MESSAGE_TYPES:
            item.update(kind="message", status=status)
            timeline.append(item)
            continue
        reason = _reason(status, event_type, paid)
        item.update(kind="transition", **{"from": status})
        if reason:
            item.update(to=status, flagged=True, reason=reason)
            flagged.append(event_id)
        else:
            status = TARGET[event_type]
            paid = paid or event_type == "order_paid"
            reached.add(status)
            item.update(to=status, flagged=False, reason=None)
            if event_type == "order_placed":
                placed = dict(details, at=at)
            method = details.get("payment_method") or details.get("method")
            if event_type in ("order_placed", "order_paid") and method:
                methods.add(method)
        timeline.append(item)
    return {"status": status, "reached": sorted(reached), "paid": paid, "placed": placed,
            "payment_methods": sorted(methods), "timeline": timeline, "flagged": flagged}


def view(state: dict) -> dict:
    """The public record of an order (GET /orders/{order_id}, projections.orders)."""
    r = replay(state)
    placed = r["placed"]
    shipped = next((e["details"] for e in r["timeline"] if e["type"] == "order_shipped" and e["kind"] == "transition"
                    and not e["flagged"]), {})
    return {
        "order_id": state["order_id"], "customer_id": state["customer_id"], "session_id": state["session_id"],
        "status": r["status"], "reached": r["reached"], "placed_at": placed.get("at"),
        "total": placed.get("total"), "products": placed.get("products"), "payment_method": placed.get("payment_method"),
        "uf": placed.get("uf"),
        "promised_delivery_at": placed.get("promised_delivery_at"),
        "carrier": shipped.get("carrier") or placed.get("carrier"), "tracking_code": shipped.get("tracking_code"),
        "payment_methods": r["payment_methods"], "flagged_count": len(r["flagged"]),
        "messages": sum(1 for e in r["timeline"] if e["kind"] == "message"),
        "timeline": r["timeline"],
    }


def customer_fact(state: dict | None, local_day) -> dict | None:
    """What a customer's 360 needs from one of their orders (None when the customer is unknown).

    `local_day(ms) -> "YYYY-MM-DD"` puts the placement on the business calendar. Messages are store
    actions, not customer activity, so they do not move `last_at`.
    """
    if not state or not state["customer_id"]:
        return None
    r = replay(state)
    own = [e[0] for e in state["events"] if e[3] in ORDER_TYPES]
    placed_at = r["placed"].get("at")
    return {
        "kind": "order", "id": state["order_id"], "customer_id": state["customer_id"], "status": r["status"],
        "reached": r["reached"], "placed_day": local_day(placed_at) if placed_at is not None else None,
        "payment_methods": r["payment_methods"], "last_at": max(own) if own else None,
    }
