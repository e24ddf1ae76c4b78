"""The purchase funnel as a pure fold.

A session's funnel state is a set of facts (steps reached, products seen and carted, device, channel,
earliest event time), so folding is order-independent and idempotent: late, out-of-order and
duplicated events give the same state. The counts are the sum over sessions of `contribution(state)`;
when an event changes a state, the counts move by the difference of its old and new contributions.
"""
from __future__ import annotations

import datetime as dt
import itertools
from functools import lru_cache
from zoneinfo import ZoneInfo

from projections.useragent import parse_client

STEPS = ("product_page", "cart", "shipping", "payment", "registration", "order_placed", "paid")
DIMENSIONS = ("all", "device", "channel", "product")
UNKNOWN = "unknown"

_STEP_OF_TYPE = {
    "cart_item_added": "cart",
    "shipping_option_chosen": "shipping",
    "payment_method_chosen": "payment",
    "registration_completed": "registration",
    "order_placed": "order_placed",
    "order_paid": "paid",
}


def empty() -> dict:
    return {"first_at": None, "device": None, "channel": None, "steps": [], "viewed": [], "carted": []}


def _add(items: list, value) -> list:
    return items if value in items else sorted([*items, value])


def evolve(state: dict | None, event) -> dict:
    """The session's funnel state after `event` (a topics.events.Event); returns a new dict."""
    s = dict(state or empty())
    s["first_at"] = event.occurred_at if s["first_at"] is None else min(s["first_at"], event.occurred_at)
    p = event.payload
    if event.type == "session_started":
        s["device"] = parse_client(p["user_agent"]).device
        s["channel"] = p["channel"]
    elif event.type == "page_viewed" and p["page_type"] == "product" and p.get("product_id"):
        s["steps"] = _add(s["steps"], "product_page")
        s["viewed"] = _add(s["viewed"], p["product_id"])
    step = _STEP_OF_TYPE.get(event.type)
    if step:
        s["steps"] = _add(s["steps"], step)
    if event.type == "cart_item_added":
        s["carted"] = _add(s["carted"], p["product_id"])
    elif event.type == "order_placed":
        for item in p["items"]:
            s["carted"] = _add(s["carted"], item["product_id"])
    return s


@lru_cache(maxsize=1024)
def local_day(ms: int, timezone: str) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, ZoneInfo(timezone)).date().isoformat()


def contribution(state: dict | None, timezone: str) -> frozenset[tuple[str, str, str, str]]:
    """(dimension, day, value, step) cells this session counts once in."""
    if not state or state["first_at"] is None:
        return frozenset()
    day = local_day(state["first_at"], timezone)
    cells = set()
    for step in state["steps"]:
        cells.add(("all", day, "all", step))
        cells.add(("device", day, state["device"] or UNKNOWN, step))
        cells.add(("channel", day, state["channel"] or UNKNOWN, step))
        products = state["viewed"] if step == "product_page" else state["carted"]
        cells.update(("product", day, product, step) for product in products)
    return frozenset(cells)


def delta(old: dict | None, new: dict, timezone: str) -> dict[tuple, int]:
    """How the counts move when a session goes from `old` to `new`."""
    before, after = contribution(old, timezone), contribution(new, timezone)
    moves = {cell: 1 for cell in after - before}
    moves.update({cell: -1 for cell in before - after})
    return moves


def report(counts: dict[tuple, int], dimension: str = "all", day: str | None = None) -> dict:
    """{day: {value: {"steps": {step: n}, "conversion": {step: rate vs previous step}}}} from merged counts."""
    out: dict = {}
    for (dim, cell_day, value, step), n in counts.items():
        if dim != dimension or (day and cell_day != day) or n == 0:
            continue
        out.setdefault(cell_day, {}).setdefault(value, {"steps": dict.fromkeys(STEPS, 0)})["steps"][step] += n
    for values in out.values():
        for row in values.values():
            steps = row["steps"]
            row["conversion"] = {
                step: (round(steps[step] / steps[prev], 4) if steps[prev] else None)
                for prev, step in itertools.pairwise(STEPS)
            }
    return dict(sorted(out.items()))
