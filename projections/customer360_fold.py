"""Customer 360 ("ficha do cliente") as a pure fold, and the known customers' share of visitors vs buyers.

The customer's record is built from the customer's own events (customers.events, feedback.events) and
from *facts*: snapshots of each of the customer's sessions and orders, re-keyed by customer id onto
customers.facts by the session and order agents. A fact carries a sequence number that grows with
every change of its session/order; the highest one wins, so a redelivered or stale snapshot changes
nothing, and a session that turns out to belong to another customer is retracted (fact None).

Profile fields are last-writer-wins by (event time, event id), NPS is the latest answer by event time:
any arrival order gives the same record. Personal data: only name and city are kept, as they come
(sealed under the customer's data key on the live path: `revealed` opens them for the view, so the
table, its changelog and the local store hold ciphertext only), and an erasure request drops them for
good and hides the record (erasure is sticky: a late registration does not bring them back). The NPS
comment is free text that may hold personal data, so it is not kept.
"""
from __future__ import annotations

from topics import personal_data

MAX_FACTS_PER_CUSTOMER = 2000  # sessions and orders each; beyond it the oldest (by last activity) go
PII_FIELDS = ("name", "city")
PROFILE_FIELDS = ("name", "uf", "city")
ORDER_COUNTS = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")


def empty(customer_id: str) -> dict:
    return {"customer_id": customer_id, "profile": {}, "registered_at": None, "erased_at": None,
            "sessions": {}, "orders": {}, "nps": None, "events_last_at": None}


def _stamp(event) -> list:
    return [event.occurred_at, event.event_id]


def _set_field(state: dict, name: str, value, stamp: list) -> None:
    if value is None or (state["erased_at"] is not None and name in PII_FIELDS):
        return
    current = state["profile"].get(name)
    if current is None or current[1] < stamp:
        state["profile"] = {**state["profile"], name: [value, stamp]}


def apply_event(state: dict | None, event) -> dict:
    """The record after a customers/feedback event of this customer; a new dict."""
    s = dict(state or empty(event.customer_id))
    p = event.payload
    stamp = _stamp(event)
    if event.type == "customer_registered":
        s["registered_at"] = event.occurred_at if s["registered_at"] is None else min(s["registered_at"], event.occurred_at)
        for name in PROFILE_FIELDS:
            _set_field(s, name, p.get(name), stamp)
    elif event.type == "customer_updated":
        for name in ("uf", "city"):
            _set_field(s, name, p.get(name), stamp)
    elif event.type == "customer_erasure_requested":
        s["erased_at"] = event.occurred_at if s["erased_at"] is None else min(s["erased_at"], event.occurred_at)
        s["profile"] = {k: v for k, v in s["profile"].items() if k not in PII_FIELDS}
    elif event.type == "nps_answered":
        if s["nps"] is None or s["nps"]["stamp"] < stamp:
            s["nps"] = {"score": p["score"], "order_id": event.order_id, "answered_at": event.occurred_at,
                        "stamp": stamp}
    else:
        return s
    s["events_last_at"] = event.occurred_at if s["events_last_at"] is None else max(s["events_last_at"], event.occurred_at)
    return s


def fact_message(kind: str, entity_id: str, customer_id: str, seq: int, fact: dict | None) -> dict:
    """The JSON value on customers.facts: a snapshot (or a retraction when `fact` is None)."""
    return {"kind": kind, "id": entity_id, "customer_id": customer_id, "seq": seq, "fact": fact}


def apply_fact(state: dict | None, message: dict) -> dict:
    """The record after a fact message: the snapshot with the highest seq wins."""
    s = dict(state or empty(message["customer_id"]))
    bucket = "sessions" if message["kind"] == "session" else "orders"
    held = s[bucket].get(message["id"])
    if held is not None and held["seq"] >= message["seq"]:
        return s
    facts = {**s[bucket], message["id"]: {"seq": message["seq"], "fact": message["fact"]}}
    if len(facts) > MAX_FACTS_PER_CUSTOMER:
        by_age = sorted(facts, key=lambda k: ((facts[k]["fact"] or {}).get("last_at") or -1, k))
        for key in by_age[:len(facts) - MAX_FACTS_PER_CUSTOMER]:
            del facts[key]
    s[bucket] = facts
    return s


def _live(state: dict, bucket: str) -> list[tuple[str, dict]]:
    return sorted((k, v["fact"]) for k, v in state[bucket].items() if v["fact"] is not None)


def cells(state: dict | None) -> frozenset[tuple[str, str]]:
    """(day, stage) cells of visitors vs buyers this customer counts once in."""
    if not state:
        return frozenset()
    out = set()
    for _sid, fact in _live(state, "sessions"):
        out.update((day, "visitors") for day in fact["visit_days"])
        out.update((day, "carted") for day in fact["cart_days"])
    for _oid, fact in _live(state, "orders"):
        if fact["placed_day"] and "placed" in fact["reached"]:
            out.add((fact["placed_day"], "ordered"))
            if "shipped" in fact["reached"]:
                out.add((fact["placed_day"], "shipped"))
    return frozenset(out)


def view(state: dict) -> dict:
    """The public record (GET /customers/{customer_id}, projections.customers)."""
    sessions = _live(state, "sessions")
    orders = _live(state, "orders")
    visits = sorted(({"session_id": sid, **visit} for sid, fact in sessions for visit in fact["visits"]),
                    key=lambda v: (v["started_at"], v["session_id"]))
    total_ms = sum(v["time_on_site_ms"] for v in visits)
    pages = sum(v["pages"] for v in visits)
    seen = [t for t in [state["events_last_at"], *(f["last_at"] for _, f in sessions), *(f["last_at"] for _, f in orders)]
            if t is not None]
    profile = {name: value for name, (value, _stamp) in state["profile"].items()}
    nps = state["nps"]

    def used(field: str) -> list[str]:
        return sorted({f[field] for _, f in sessions if f[field]})

    return {
        "customer_id": state["customer_id"], "name": profile.get("name"), "uf": profile.get("uf"),
        "city": profile.get("city"), "registered_at": state["registered_at"], "erased": state["erased_at"] is not None,
        "visit_count": len(visits), "pages": pages,
        "pages_per_visit": round(pages / len(visits), 2) if visits else None,
        "time_on_site_ms": total_ms, "avg_time_on_site_ms": round(total_ms / len(visits), 1) if visits else None,
        "visits": visits, "browsers": used("browser"), "os": used("os"), "devices": used("device"),
        "channels": used("channel"),
        "orders": {name: sum(1 for _, f in orders if name in f["reached"]) for name in ORDER_COUNTS},
        "order_ids": [oid for oid, _ in orders],
        "payment_methods": sorted({m for _, f in orders for m in f["payment_methods"]}),
        "last_seen_at": max(seen) if seen else None,
        "nps": None if nps is None else {"score": nps["score"], "order_id": nps["order_id"],
                                         "answered_at": nps["answered_at"]},
    }


def revealed(view_: dict, key: personal_data.CustomerKey | None) -> dict:
    """The view with its sealed personal fields opened with the customer's key (absent when gone)."""
    return {**view_, **{f: personal_data.open_value(key, view_["customer_id"], f, view_[f]) for f in PII_FIELDS}}


def shown(state: dict | None) -> bool:
    """Whether the record is shown (views, projections.customers): it exists and was not erased."""
    return exists(state) and state["erased_at"] is None


def exists(state: dict | None) -> bool:
    """Whether the customer has anything to show: an event of their own or a live session/order."""
    if not state:
        return False
    return state["events_last_at"] is not None or any(
        v["fact"] is not None for bucket in ("sessions", "orders") for v in state[bucket].values())
