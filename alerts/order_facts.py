"""From order events (keyed by order) to the facts the alert windows need (keyed by product, carrier).

An order's delivered units become one "delivered" fact per product, at the delivered event's time;
an order_returned event becomes one "returned" fact per product with its units and reason; a
delivery becomes one fact for the carrier of the order_shipped event, late when it came after the
order's promised_delivery_at. A fact needs pieces that may arrive in any order (delivered before
placed after a late event), so the order keeps what it has seen and emits each fact once, as soon as
its pieces are there.

Fact ids are deterministic (order id or return event id + product): a replay emits the same ids and
the downstream window dedupes on them. An order is delivered once: a second order_delivered (an
impossible transition, or a duplicate under another event id) changes nothing.
"""
from __future__ import annotations

from alerts.metric_labels import bounded

MAX_RETURN_IDS = 50  # returns remembered per order for dedupe: far more than any real order has


def empty() -> dict:
    return {"items": None, "promised_at": None, "carrier": None, "delivered_at": None, "method": None,
            "total": None, "paid": False, "returns": [], "sent": []}


def _units(items) -> dict[str, int]:
    units: dict[str, int] = {}
    for item in items or ():
        units[item["product_id"]] = units.get(item["product_id"], 0) + int(item["quantity"])
    return units


def method_label(method: str | None) -> str:
    """A bounded metric label for a payment method (alerts/metric_labels.toml)."""
    return bounded("payment_method", method)


def evolve(state: dict | None, event) -> tuple[dict, list[dict], list[dict]]:
    """(new order state, product facts, carrier facts) after one order event; idempotent."""
    s = dict(state or empty())
    product_facts: list[dict] = []
    payload = event.payload or {}
    if event.type == "order_placed" and s["items"] is None:
        s.update(items=_units(payload.get("items")), promised_at=payload.get("promised_delivery_at"),
                 method=payload.get("payment_method"), total=payload.get("total"))
    elif event.type == "order_paid" and not s["paid"]:
        s["paid"] = True
    elif event.type == "order_shipped" and s["carrier"] is None:
        s["carrier"] = payload.get("carrier")
    elif event.type == "order_delivered" and s["delivered_at"] is None:
        s["delivered_at"] = event.occurred_at
    elif event.type == "order_returned" and event.event_id not in s["returns"]:
        s["returns"] = (s["returns"] + [event.event_id])[-MAX_RETURN_IDS:]
        for product_id, units in sorted(_units(payload.get("items")).items()):
            product_facts.append({"fact_id": f"returned:{event.event_id}:{product_id}", "subject": product_id,
                                  "at": event.occurred_at, "units": 0, "hits": units,
                                  "reason": payload.get("reason") or "unknown"})
    sent = list(s["sent"])
    if "delivered" not in sent and s["items"] is not None and s["delivered_at"] is not None:
        sent.append("delivered")
        for product_id, units in sorted(s["items"].items()):
            product_facts.append({"fact_id": f"delivered:{event.order_id}:{product_id}", "subject": product_id,
                                  "at": s["delivered_at"], "units": units, "hits": 0, "reason": None})
    carrier_facts: list[dict] = []
    if ("carrier" not in sent and s["carrier"] and s["delivered_at"] is not None
            and s["promised_at"] is not None):
        sent.append("carrier")
        carrier_facts.append({"fact_id": f"delivery:{event.order_id}", "subject": s["carrier"],
                              "at": s["delivered_at"], "units": 1,
                              "hits": 1 if s["delivered_at"] > s["promised_at"] else 0, "reason": "late"})
    s["sent"] = sent
    return s, product_facts, carrier_facts


def newly_placed(old: dict | None, new: dict) -> bool:
    return (old is None or old["items"] is None) and new["items"] is not None


def newly_paid(old: dict | None, new: dict) -> bool:
    return not (old or {}).get("paid") and new["paid"]
