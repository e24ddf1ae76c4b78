"""Expected projections computed straight from the events, independently of the code under test (no
imports from projections/, streams/ or alerts/): the oracle of the end-to-end and fault tests.

Every function takes the events as JSON dicts (the ingest form) or `topics.events.Event`s, in arrival
order (the order they were published in), and states the business rule it applies. Thresholds come
from the data files the business edits (alerts/alerts.toml), read here as plain TOML.
"""
from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from kafka.partitioner.default import murmur2
from ua_parser import parse

REPO = Path(__file__).resolve().parent.parent
TIMEZONE = "America/Sao_Paulo"
TZ = ZoneInfo(TIMEZONE)
MIN, H, DAY = 60_000, 3_600_000, 86_400_000
VISIT_GAP_MS = 30 * MIN  # a visit ends after 30 minutes without a page view (README, HTTP API)
FUNNEL_STEPS = ["product_page", "cart", "shipping", "payment", "registration", "order_placed", "paid"]
SESSION_TYPES = {"session_started", "page_viewed", "cart_item_added", "cart_item_removed", "cart_quantity_changed",
                 "shipping_option_chosen", "payment_method_chosen", "registration_completed"}
ORDER_STATUS = {"order_placed": "placed", "payment_pending": "payment_pending", "order_paid": "paid",
                "payment_expired": "payment_expired", "payment_failed": "payment_failed",
                "order_invoiced": "invoiced", "order_shipped": "shipped", "order_delivered": "delivered",
                "order_cancelled": "cancelled", "return_requested": "return_requested",
                "order_returned": "returned", "order_refunded": "refunded"}
LIFECYCLE = [*ORDER_STATUS, "message_sent"]
# status -> events the state machine accepts (placed -> payment -> paid -> invoiced -> shipped ->
# delivered -> return -> refund; cancellation only before shipment; refund after a cancel only when paid)
ACCEPTS = {
    None: {"order_placed"},
    "placed": {"payment_pending", "order_paid", "payment_failed", "order_cancelled"},
    "payment_pending": {"payment_pending", "order_paid", "payment_expired", "payment_failed", "order_cancelled"},
    "payment_expired": {"payment_pending", "order_paid", "order_cancelled"},
    "payment_failed": {"payment_pending", "order_paid", "payment_failed", "order_cancelled"},
    "paid": {"order_invoiced", "order_shipped", "order_cancelled"},
    "invoiced": {"order_shipped", "order_cancelled"},
    "shipped": {"order_delivered"},
    "delivered": {"return_requested"},
    "return_requested": {"order_returned"},
    "returned": {"order_refunded"},
    "cancelled": {"order_refunded"},
    "refunded": set(),
}


# --- events in one shape ------------------------------------------------------------------------

class Ev(NamedTuple):
    event_id: str
    type: str
    occurred_at: int  # UTC milliseconds
    source: str
    session_id: str | None
    customer_id: str | None
    order_id: str | None
    payload: dict


def ms(value) -> int:
    """UTC milliseconds of an int, or of an ISO-8601 text with Z or an offset."""
    if isinstance(value, int):
        return value
    return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def normalize(events) -> list[Ev]:
    """JSON dicts or Event objects as `Ev`s with millisecond times, in the same (arrival) order."""
    out = []
    for e in events:
        if isinstance(e, dict):
            out.append(Ev(e["event_id"], e["type"], ms(e["occurred_at"]), e.get("source"), e.get("session_id"),
                          e.get("customer_id"), e.get("order_id"), e.get("payload") or {}))
        else:
            out.append(Ev(e.event_id, e.type, e.occurred_at, e.source, e.session_id, e.customer_id, e.order_id,
                          e.payload))
    return out


def distinct(events) -> list[Ev]:
    """One copy per event_id (the first to arrive): redeliveries and re-ingests change nothing."""
    seen, out = set(), []
    for e in normalize(events):
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


def day_of(at: int) -> str:
    return dt.datetime.fromtimestamp(at / 1000, TZ).date().isoformat()


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# --- funnel -------------------------------------------------------------------------------------

def device_class(user_agent: str) -> str:
    r = parse(user_agent)
    if r.device and r.device.family == "Spider":
        return "bot"
    if r.device and (r.device.family == "iPad" or "Tablet" in (r.device.brand or "")):
        return "tablet"
    return "mobile" if r.os and r.os.family in ("Android", "iOS") else "desktop"


def funnel(events) -> dict:
    """{(dimension, day, value, step): sessions} for the dimensions all, device, channel, product."""
    events = distinct(events)
    order_session = {e.order_id: e.session_id for e in events if e.type == "order_placed" and e.session_id}
    by_session: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        sid = e.session_id
        if e.type in ("order_placed", "order_paid"):
            sid = sid or order_session.get(e.order_id)
        elif e.type not in SESSION_TYPES:
            continue
        if sid:
            by_session[sid].append(e)
    counts: dict[tuple, int] = defaultdict(int)
    for evs in by_session.values():
        day = day_of(min(e.occurred_at for e in evs))
        starts = [e for e in evs if e.type == "session_started"]
        device = device_class(starts[0].payload["user_agent"]) if starts else "unknown"
        channel = starts[0].payload["channel"] if starts else "unknown"
        viewed = {e.payload["product_id"] for e in evs if e.type == "page_viewed"
                  and e.payload["page_type"] == "product" and e.payload.get("product_id")}
        carted = {e.payload["product_id"] for e in evs if e.type == "cart_item_added"}
        carted |= {i["product_id"] for e in evs if e.type == "order_placed" for i in e.payload["items"]}
        types = {e.type for e in evs}
        reached = {
            "product_page": bool(viewed), "cart": "cart_item_added" in types,
            "shipping": "shipping_option_chosen" in types, "payment": "payment_method_chosen" in types,
            "registration": "registration_completed" in types, "order_placed": "order_placed" in types,
            "paid": "order_paid" in types,
        }
        for step, hit in reached.items():
            if not hit:
                continue
            counts[("all", day, "all", step)] += 1
            counts[("device", day, device, step)] += 1
            counts[("channel", day, channel, step)] += 1
            for product in (viewed if step == "product_page" else carted):
                counts[("product", day, product, step)] += 1
    return dict(counts)


def funnel_from_view(dimension: str, body: dict) -> dict:
    """The /funnel HTTP body flattened to the same {(dimension, day, value, step): n} shape."""
    out = {}
    for day, values in body["days"].items():
        for value, row in values.items():
            for step, n in row["steps"].items():
                if n:
                    out[(dimension, day, value, step)] = n
    return out


# --- visits, orders, customers, visitors vs buyers ----------------------------------------------

def sessions(events) -> dict[str, dict]:
    """Per session the /visits record: visits split on 30-minute gaps between page views (pages,
    landing page, time on site), the first session_started's device, channel and UTM."""
    by_session = defaultdict(list)
    for e in distinct(events):
        if e.session_id and (e.type in SESSION_TYPES or e.type == "order_placed"):
            by_session[e.session_id].append(e)
    out = {}
    for sid, evs in by_session.items():
        pages = sorted((e.occurred_at, e.event_id, e.payload["path"]) for e in evs if e.type == "page_viewed")
        visits = []
        for at, _id, path in pages:
            if visits and at - visits[-1]["ended_at"] <= VISIT_GAP_MS:
                visits[-1].update(ended_at=at, pages=visits[-1]["pages"] + 1)
            else:
                visits.append({"started_at": at, "ended_at": at, "pages": 1, "landing_page": path})
        for v in visits:
            v["time_on_site_ms"] = v["ended_at"] - v["started_at"]
        starts = sorted((e for e in evs if e.type == "session_started"), key=lambda e: (e.occurred_at, e.event_id))
        s = starts[0] if starts else None
        ua = parse(s.payload["user_agent"]) if s else None
        customers = sorted({e.customer_id for e in evs if e.customer_id})
        out[sid] = {
            "session_id": sid, "customer_id": customers[0] if customers else None,
            "started_at": s.occurred_at if s else None,
            "first_at": min(e.occurred_at for e in evs), "last_at": max(e.occurred_at for e in evs),
            "browser": ua.user_agent.family if s else None, "os": ua.os.family if s else None,
            "device": device_class(s.payload["user_agent"]) if s else None,
            "channel": s.payload["channel"] if s else None, "utm_source": s.payload["utm_source"] if s else None,
            "utm_campaign": s.payload["utm_campaign"] if s else None,
            "landing_page": s.payload["landing_page"] if s else None,
            "visits": visits, "visit_count": len(visits), "pages": len(pages),
            "time_on_site_ms": sum(v["time_on_site_ms"] for v in visits),
            "cart_additions": sum(1 for e in evs if e.type == "cart_item_added"),
            "_visit_days": sorted({day_of(e.occurred_at) for e in evs if e.type in ("session_started", "page_viewed")}),
            "_cart_days": sorted({day_of(e.occurred_at) for e in evs if e.type == "cart_item_added"}),
        }
    return out


def orders(events) -> dict[str, dict]:
    """Per order: status through the state machine (events in event-time order; a transition the
    machine does not accept is flagged and changes nothing), flags, timeline, messages, methods.
    Keys starting with "_" are not on the /orders record (other oracles use them)."""
    by_order = defaultdict(list)
    for e in distinct(events):
        if e.order_id and (e.type in ORDER_STATUS or e.type == "message_sent"):
            by_order[e.order_id].append(e)
    out = {}
    for oid, evs in by_order.items():
        evs.sort(key=lambda e: (e.occurred_at, LIFECYCLE.index(e.type), e.event_id))
        status, paid, reached, flagged, methods, placed, accepted = None, False, set(), [], set(), None, {}
        for e in evs:
            if e.type == "message_sent":
                continue
            ok = e.type in ACCEPTS[status] and not (status == "cancelled" and not paid)
            if not ok:
                flagged.append(e.event_id)
                continue
            status = ORDER_STATUS[e.type]
            reached.add(status)
            accepted.setdefault(e.type, e.occurred_at)
            paid |= e.type == "order_paid"
            if e.type == "order_placed":
                placed = e
                methods.add(e.payload["payment_method"])
            if e.type == "order_paid":
                methods.add(e.payload["method"])
        customers = sorted({e.customer_id for e in evs if e.customer_id and e.type != "message_sent"})
        out[oid] = {"status": status, "reached": sorted(reached), "flagged": flagged,
                    "timeline": [e.event_id for e in evs], "messages": sum(e.type == "message_sent" for e in evs),
                    "total": placed.payload["total"] if placed else None, "placed_at": placed.occurred_at if placed else None,
                    "customer_id": customers[0] if customers else None, "methods": sorted(methods),
                    "last_at": max((e.occurred_at for e in evs if e.type != "message_sent"), default=None),
                    "_payment_method": placed.payload["payment_method"] if placed else None,
                    "_shipped_at": accepted.get("order_shipped")}
    return out


def customers(events, session_records: dict, order_records: dict) -> dict[str, dict]:
    """Per customer the 360 record: profile (dropped on erasure), visits, devices, orders by stage,
    payment methods, and the NPS answer latest in event time."""
    own = defaultdict(list)
    for e in distinct(events):
        if e.customer_id and e.type in ("customer_registered", "customer_updated", "customer_erasure_requested",
                                        "nps_answered"):
            own[e.customer_id].append(e)
    ids = set(own) | {s["customer_id"] for s in session_records.values() if s["customer_id"]} \
        | {o["customer_id"] for o in order_records.values() if o["customer_id"]}
    out = {}
    for cid in ids:
        evs = sorted(own[cid], key=lambda e: (e.occurred_at, e.event_id))
        erased = any(e.type == "customer_erasure_requested" for e in evs)
        profile = {}
        for e in evs:
            if e.type in ("customer_registered", "customer_updated"):
                profile.update({k: e.payload[k] for k in ("name", "uf", "city") if e.payload.get(k) is not None})
        if erased:
            continue  # an erased customer's record is hidden (and tombstoned on projections.customers)
        mine = {sid: s for sid, s in session_records.items() if s["customer_id"] == cid}
        my_orders = {oid: o for oid, o in order_records.items() if o["customer_id"] == cid}
        visits = sorted(({"session_id": sid, **v} for sid, s in mine.items() for v in s["visits"]),
                        key=lambda v: (v["started_at"], v["session_id"]))
        total = sum(v["time_on_site_ms"] for v in visits)
        pages = sum(v["pages"] for v in visits)
        answers = [e for e in evs if e.type == "nps_answered"]
        seen = [e.occurred_at for e in evs] + [s["last_at"] for s in mine.values()] \
            + [o["last_at"] for o in my_orders.values() if o["last_at"] is not None]
        out[cid] = {
            "customer_id": cid, "name": profile.get("name"), "uf": profile.get("uf"), "city": profile.get("city"),
            "registered_at": min((e.occurred_at for e in evs if e.type == "customer_registered"), default=None),
            "erased": erased, "visit_count": len(visits), "pages": pages,
            "pages_per_visit": round(pages / len(visits), 2) if visits else None,
            "time_on_site_ms": total, "avg_time_on_site_ms": round(total / len(visits), 1) if visits else None,
            "visits": visits,
            "browsers": sorted({s["browser"] for s in mine.values() if s["browser"]}),
            "os": sorted({s["os"] for s in mine.values() if s["os"]}),
            "devices": sorted({s["device"] for s in mine.values() if s["device"]}),
            "channels": sorted({s["channel"] for s in mine.values() if s["channel"]}),
            "orders": {k: sum(k in o["reached"] for o in my_orders.values())
                       for k in ("placed", "paid", "shipped", "delivered", "cancelled", "returned")},
            "order_ids": sorted(my_orders),
            "payment_methods": sorted({m for o in my_orders.values() for m in o["methods"]}),
            "last_seen_at": max(seen) if seen else None,
            "nps": None if not answers else {"score": answers[-1].payload["score"], "order_id": answers[-1].order_id,
                                             "answered_at": answers[-1].occurred_at},
        }
    return out


def visitors_buyers(session_records: dict, order_records: dict) -> dict[str, dict]:
    """{day: {visitors, carted, ordered, shipped}}: distinct visitors (the customer, else the session)."""
    who = defaultdict(set)  # (day, stage) -> visitor ids
    for sid, s in session_records.items():
        visitor = s["customer_id"] or f"session:{sid}"
        for day in s["_visit_days"]:
            who[(day, "visitors")].add(visitor)
        for day in s["_cart_days"]:
            who[(day, "carted")].add(visitor)
    for o in order_records.values():
        if o["customer_id"] and "placed" in o["reached"]:
            who[(day_of(o["placed_at"]), "ordered")].add(o["customer_id"])
            if "shipped" in o["reached"]:
                who[(day_of(o["placed_at"]), "shipped")].add(o["customer_id"])
    out = {}
    for (day, stage), visitors in who.items():
        out.setdefault(day, {"visitors": 0, "carted": 0, "ordered": 0, "shipped": 0})[stage] = len(visitors)
    return out


def public(records: dict) -> dict:
    """Records without the oracle's own "_" keys."""
    return {k: {f: v for f, v in r.items() if not f.startswith("_")} for k, r in records.items()}


def handling_time(order_records: dict) -> dict[str, dict]:
    """Per payment method of the placed event: orders whose shipment the state machine accepted, and
    the average and median hours from placement to that shipment (the handling-time report)."""
    hours = defaultdict(list)
    for o in order_records.values():
        if o["placed_at"] is not None and o["_shipped_at"] is not None:
            hours[o["_payment_method"] or "unknown"].append((o["_shipped_at"] - o["placed_at"]) / H)
    out = {}
    for method, values in sorted(hours.items()):
        values.sort()
        out[method] = {"orders_shipped": len(values), "average_hours": round(sum(values) / len(values), 1),
                       "median_hours": round(values[len(values) // 2], 1)}
    return out


# --- boleto/Pix recovery -------------------------------------------------------------------------

RECOVERY_LATENESS_MS = 5 * MIN  # alerts/recovery.toml [watermark] allowed_lateness, as the business agreed
KEEP_ON_CANCEL = {"payment_not_made"}  # an automatic cancellation of an unpaid order keeps the new-boleto offer
BANK_HOLIDAYS = {"01-01", "04-21", "05-01", "09-07", "10-12", "11-02", "11-15", "11-20", "12-25"}
ORDER_FAMILY = set(ORDER_STATUS)  # the events of orders.events (messages do not move recovery's clock)


def plus_business_days(at: int, n: int) -> int:
    """`at` moved n bank business days forward (Mon-Fri, not a national holiday), same local time."""
    day = dt.datetime.fromtimestamp(at / 1000, TZ)
    date = day.date()
    while n:
        date += dt.timedelta(days=1)
        n -= date.weekday() < 5 and date.strftime("%m-%d") not in BANK_HOLIDAYS
    return int(dt.datetime.combine(date, day.time(), tzinfo=TZ).timestamp() * 1000)


def cadence(method: str, issued: int, due: int) -> dict[str, int]:
    """The steps of a charge as the business states them: boleto reminder 24 h after issue (only before
    the due time and the last call), last call 14 h before the due time, new boleto 3 business days + 2 h
    after it; Pix reminder 15 min before expiry, new Pix 30 min after. None before the issue."""
    if method == "boleto":
        steps = {"reminder": issued + 24 * H, "last_call": due - 14 * H,
                 "new_boleto": plus_business_days(due, 3) + 2 * H}
        if not (steps["reminder"] < due and steps["reminder"] < steps["last_call"]):
            del steps["reminder"]
    elif method == "pix":
        steps = {"reminder": due - 15 * MIN, "new_pix": due + 30 * MIN}
        if steps["reminder"] >= due:
            del steps["reminder"]
    else:
        return {}
    return {k: v for k, v in steps.items() if v >= issued}


def recovery(events, partitions: int) -> tuple[set[str], dict]:
    """(action ids, /recovery figures) for events that arrive within the allowed lateness.

    Each orders partition's clock is its newest order event time minus the lateness; a step falls
    due (is sent) when the clock of its order's partition has passed it, unless a payment of the
    order, a stopping cancellation or a newer charge came at or before it. An order is recovered
    when an action went out before its first payment; the credit goes to the charge that payment
    names (else the newest one issued before it) and its amount is the recovered revenue."""
    events = distinct(events)
    newest = defaultdict(int)
    for e in events:
        if e.type in ORDER_FAMILY and e.order_id:
            p = partition_of(e.order_id, partitions)
            newest[p] = max(newest[p], e.occurred_at)
    charges, payments, stops = defaultdict(dict), defaultdict(list), defaultdict(list)
    for e in events:
        if e.type == "payment_pending" and e.payload["method"] in ("boleto", "pix"):
            c = {"method": e.payload["method"], "amount": e.payload["amount"], "at": e.occurred_at,
                 "due": ms(e.payload["due_at"]), "id": e.event_id}
            current = charges[e.order_id].get(e.payload["charge_id"])
            if current is None or (c["at"], c["id"]) < (current["at"], current["id"]):
                charges[e.order_id][e.payload["charge_id"]] = c
        elif e.type == "order_paid":
            payments[e.order_id].append((e.occurred_at, e.event_id, e.payload.get("charge_id")))
        elif e.type == "order_cancelled" and e.payload["reason"] not in KEEP_ON_CANCEL:
            stops[e.order_id].append(e.occurred_at)
    cells: dict[str, int] = defaultdict(int)
    action_ids = set()
    for oid, mine in charges.items():
        clock = newest[partition_of(oid, partitions)] - RECOVERY_LATENESS_MS
        stop = min([p[0] for p in payments[oid]] + stops[oid], default=None)
        ordered = sorted(mine.items(), key=lambda kv: (kv[1]["at"], kv[0]))
        first = min(payments[oid], default=None)
        sent_times = []
        for i, (charge_id, c) in enumerate(ordered):
            next_issued = ordered[i + 1][1]["at"] if i + 1 < len(ordered) else None
            cells[f"charges|{c['method']}"] += 1
            sent = scheduled = 0
            for step, at in cadence(c["method"], c["at"], c["due"]).items():
                if (stop is not None and stop <= at) or (next_issued is not None and at >= next_issued):
                    continue
                if at < clock:
                    sent += 1
                    sent_times.append(at)
                    action_ids.add(f"{charge_id}:{step}")
                    cells[f"actions|{c['method']}|{step}"] += 1
                    if first is not None and at >= first[0]:
                        cells[f"after_payment|{c['method']}"] += 1
                else:
                    scheduled += 1
            cells[f"targeted|{c['method']}"] += bool(sent)
            cells[f"open|{c['method']}"] += bool(scheduled)
        if first is not None:
            named = first[2] if first[2] in mine else None
            before = [cid for cid, c in ordered if c["at"] <= first[0]]
            credited = mine[named or (before[-1] if before else ordered[0][0])]
            cells[f"paid|{credited['method']}"] += 1
            if any(at < first[0] for at in sent_times):
                cells[f"recovered|{credited['method']}"] += 1
                cells[f"revenue_cents|{credited['method']}"] += round(credited["amount"] * 100)
    return action_ids, recovery_figures(cells)


def recovery_figures(cells: dict[str, int]) -> dict:
    """The shape of GET /recovery (methods, actions, total) from the figure cells."""
    def block(get) -> dict:
        targeted, recovered = get("targeted"), get("recovered")
        return {"charges": get("charges"), "targeted": targeted, "paid": get("paid"), "recovered": recovered,
                "recovered_revenue_brl": round(get("revenue_cents") / 100, 2),
                "recovery_rate": round(recovered / targeted, 4) if targeted else None,
                "pending": get("open"), "actions_after_payment": get("after_payment")}

    methods = sorted({"boleto", "pix"} | {k.split("|")[1] for k, v in cells.items() if v})
    out = {"methods": {}, "actions": {}}
    for m in methods:
        out["methods"][m] = block(lambda kind, m=m: cells.get(f"{kind}|{m}", 0))
        out["actions"][m] = {k.split("|")[2]: v for k, v in sorted(cells.items()) if k.startswith(f"actions|{m}|") and v}
    out["total"] = block(lambda kind: sum(v for k, v in cells.items() if k.startswith(f"{kind}|")))
    out["total"]["actions"] = sum(v for k, v in cells.items() if k.startswith("actions|"))
    return out


# --- return-rate and late-delivery alerts ---------------------------------------------------------

def alert_rules(path: Path = REPO / "alerts" / "alerts.toml") -> dict[str, dict]:
    """The two stream-judged rules' figures, read from the file operations edit."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    r, d = raw["return_rate"], raw["late_deliveries"]
    assert r["baseline"] == "configured", "the oracle judges against the configured baseline only"
    return {
        "return_rate": {"window": r["window_days"], "lateness": r["allowed_lateness_hours"] * H,
                        "min": r["min_delivered"], "threshold": r["baseline_rate"] + r["margin"],
                        "z": r["confidence_z"], "clear_factor": r["clear_factor"], "critical": r["critical_rate"]},
        "late_deliveries": {"window": d["window_days"], "lateness": d["allowed_lateness_hours"] * H,
                            "min": d["min_deliveries"], "threshold": d["threshold_rate"],
                            "z": d["confidence_z"], "clear_factor": d["clear_factor"], "critical": d["critical_rate"]},
    }


def wilson_lower(k: int, n: int, z: float) -> float:
    """Lower bound of the Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0
    k = min(k, n)
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def alert_facts(events) -> tuple[dict, dict]:
    """({product: [(at, delivered units, returned units, reason)]}, {carrier: [(at, 1, late, None)]}).

    An order's delivery gives each of its products the units it ordered, on the day of its (first)
    order_delivered; each order_returned gives its products' returned units and reason; a delivery
    counts for the carrier of the order's (first) order_shipped, late when after promised_delivery_at."""
    placed, shipped, delivered = {}, {}, {}
    products, carriers = defaultdict(list), defaultdict(list)
    for e in distinct(events):
        if e.type == "order_placed":
            placed.setdefault(e.order_id, e)
        elif e.type == "order_shipped":
            shipped.setdefault(e.order_id, e.payload["carrier"])
        elif e.type == "order_delivered":
            delivered.setdefault(e.order_id, e.occurred_at)
        elif e.type == "order_returned":
            units = defaultdict(int)
            for item in e.payload["items"]:
                units[item["product_id"]] += item["quantity"]
            for product, n in units.items():
                products[product].append((e.occurred_at, 0, n, e.payload.get("reason") or "unknown"))
    for oid, at in delivered.items():
        if oid in placed:
            units = defaultdict(int)
            for item in placed[oid].payload["items"]:
                units[item["product_id"]] += item["quantity"]
            for product, n in units.items():
                products[product].append((at, n, 0, None))
            promised = placed[oid].payload.get("promised_delivery_at")
            if shipped.get(oid) and promised is not None:
                carriers[shipped[oid]].append((at, 1, int(at > ms(promised)), None))
    return dict(products), dict(carriers)


def judge(facts: dict, rule: dict, rule_name: str) -> dict:
    """Every UTC day from the first fact's to the last closed one (the day before the one holding the
    newest fact minus the allowed lateness: when the log ends with orders delivered on every
    partition, every partition closes that same day), each subject's sliding window is judged in turn: raise with at least `min` units and a Wilson lower bound above the threshold;
    clear when the window has no units or its rate is back at or below threshold x clear_factor.

    Returns {"events": [(alert_id, state, occurred_at)], "active": {subject: alert_id},
    "rows": {subject: {units, hits, reasons, alert, facts}}} at the last closed day."""
    last = (max(at for rows in facts.values() for at, *_ in rows) - rule["lateness"]) // DAY - 1
    first = min(at for rows in facts.values() for at, *_ in rows) // DAY
    open_alerts: dict[str, dict] = {}
    events = []

    def window(rows, day):
        units = sum(u for at, u, _, _ in rows if day - rule["window"] < at // DAY <= day)
        reasons = defaultdict(int)
        for at, _, h, reason in rows:
            if h and day - rule["window"] < at // DAY <= day:
                reasons[reason] += h
        return units, sum(reasons.values()), dict(sorted(reasons.items()))

    for day in range(first, last + 1):
        for subject in sorted(facts):
            units, hits, _ = window(facts[subject], day)
            at = (day + 1) * DAY
            if subject not in open_alerts:
                lower = wilson_lower(hits, units, rule["z"])
                if units >= rule["min"] and lower > rule["threshold"]:
                    open_alerts[subject] = {"episode_start_ms": at,
                                            "severity": "critical" if lower > rule["critical"] else "warning"}
                    events.append((f"{rule_name}:{subject}:{at}", "raised", at))
            elif units == 0 or hits / units <= rule["threshold"] * rule["clear_factor"]:
                events.append((f"{rule_name}:{subject}:{open_alerts.pop(subject)['episode_start_ms']}", "cleared", at))
    rows = {}
    for subject, subject_facts in facts.items():
        units, hits, reasons = window(subject_facts, last)
        rows[subject] = {"units": units, "hits": hits, "reasons": reasons, "alert": open_alerts.get(subject),
                         "facts": len(subject_facts)}
    return {"events": sorted(events), "last_day": last,
            "active": {s: f"{rule_name}:{s}:{a['episode_start_ms']}" for s, a in open_alerts.items()}, "rows": rows}


def alerts(events) -> dict[str, dict]:
    """{"return_rate": judge(...), "late_deliveries": judge(...)} for the whole log."""
    rules = alert_rules()
    products, carriers = alert_facts(events)
    return {"return_rate": judge(products, rules["return_rate"], "return_rate"),
            "late_deliveries": judge(carriers, rules["late_deliveries"], "late_deliveries")}


def project_order(record) -> dict:
    """The fields of an /orders record that the order ground truth predicts (event ids, not rendering)."""
    transitions = [e for e in record["timeline"] if e["kind"] == "transition"]
    return {"status": record["status"], "reached": record["reached"],
            "flagged": [e["event_id"] for e in transitions if e["flagged"]],
            "timeline": [e["event_id"] for e in record["timeline"]], "messages": record["messages"],
            "total": record["total"], "placed_at": record["placed_at"], "customer_id": record["customer_id"],
            "methods": record["payment_methods"]}
