"""Expected projections computed straight from the generated JSON events, independently of the code
under test (no imports from projections/ or streams/): the oracle of the end-to-end tests."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from ua_parser import parse

FUNNEL_STEPS = ["product_page", "cart", "shipping", "payment", "registration", "order_placed", "paid"]


def _ms(value) -> int:
    if isinstance(value, int):
        return value
    return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def device_class(user_agent: str) -> str:
    r = parse(user_agent)
    if r.device and r.device.family == "Spider":
        return "bot"
    if r.device and (r.device.family == "iPad" or "Tablet" in (r.device.brand or "")):
        return "tablet"
    return "mobile" if r.os and r.os.family in ("Android", "iOS") else "desktop"


def funnel(events: list[dict], timezone: str = "America/Sao_Paulo") -> dict:
    """{(dimension, day, value, step): sessions} for the dimensions all, device, channel, product."""
    order_session = {e["order_id"]: e["session_id"] for e in events
                     if e["type"] == "order_placed" and e.get("session_id")}
    by_session: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        sid = e.get("session_id")
        if e["type"] in ("order_placed", "order_paid"):
            sid = sid or order_session.get(e.get("order_id"))
        elif e["type"] not in ("session_started", "page_viewed", "cart_item_added", "cart_item_removed",
                               "cart_quantity_changed", "shipping_option_chosen", "payment_method_chosen",
                               "registration_completed"):
            continue
        if sid:
            by_session[sid].append(e)
    counts: dict[tuple, int] = defaultdict(int)
    tz = ZoneInfo(timezone)
    for evs in by_session.values():
        day = dt.datetime.fromtimestamp(min(_ms(e["occurred_at"]) for e in evs) / 1000, tz).date().isoformat()
        starts = [e for e in evs if e["type"] == "session_started"]
        device = device_class(starts[0]["payload"]["user_agent"]) if starts else "unknown"
        channel = starts[0]["payload"]["channel"] if starts else "unknown"
        viewed = {e["payload"]["product_id"] for e in evs if e["type"] == "page_viewed"
                  and e["payload"]["page_type"] == "product" and e["payload"].get("product_id")}
        carted = {e["payload"]["product_id"] for e in evs if e["type"] == "cart_item_added"}
        carted |= {i["product_id"] for e in evs if e["type"] == "order_placed" for i in e["payload"]["items"]}
        types = {e["type"] for e in evs}
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
