"""Expected stream alerts computed from the raw events alone, without posvenda's alert code.

What the business states: a product page's return rate is returned units / delivered units over the
last `window_days` UTC days; each day D is judged once, on the days (D - window_days, D], from the
first day with a fact through the last day the log closes. An alert is raised when at least
`min_sample` units were delivered and the Wilson 95 % lower bound of the rate is above the
threshold; it clears when the window has no delivery or its rate is at or below the threshold times
the clear factor. A late-delivery alert is the same question per carrier: deliveries after the
order's promised date / deliveries.

The last closed day: each orders partition's watermark is the newest time of a delivery or return
on it; a day is closed once the slowest partition's watermark minus the allowed lateness has passed
its end.
The partition of an order is the Kafka producer's (murmur2 of the order id), computed here with
kafka-python's own partitioner.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kafka.partitioner.default import murmur2

DAY = 24 * 3600 * 1000


def wilson_lower(hits: int, trials: int, z: float) -> float:
    """Wilson score lower bound, from its textbook formula (returns above deliveries capped)."""
    if trials == 0:
        return 0.0
    p = min(hits, trials) / trials
    root = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, (p + z * z / (2 * trials) - root) / (1 + z * z / trials))


def wilson_upper(hits: int, trials: int, z: float) -> float:
    if trials == 0:
        return 1.0
    p = min(hits, trials) / trials
    root = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return min(1.0, (p + z * z / (2 * trials) + root) / (1 + z * z / trials))


@dataclass(frozen=True)
class Rule:
    name: str
    window_days: int
    min_sample: int
    threshold: float
    clear_factor: float
    z: float


def facts(events) -> tuple[dict, dict]:
    """{product: [(day, delivered, returned, reason)]}, {carrier: [(day, 1, late, None)]}, one row per
    distinct event (an order's units of one product are one delivery)."""
    placed, shipped, seen = {}, {}, set()
    products: dict[str, list] = {}
    carriers: dict[str, list] = {}
    for e in events:
        if e.type == "order_placed":
            placed.setdefault(e.order_id, e)
        elif e.type == "order_shipped":
            shipped.setdefault(e.order_id, e.payload["carrier"])
    delivered = set()
    for e in events:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        if e.type == "order_delivered" and e.order_id not in delivered:
            delivered.add(e.order_id)
            units: dict[str, int] = {}
            for item in placed[e.order_id].payload["items"]:
                units[item["product_id"]] = units.get(item["product_id"], 0) + item["quantity"]
            for product, n in units.items():
                products.setdefault(product, []).append((e.occurred_at // DAY, n, 0, None))
            late = int(e.occurred_at > placed[e.order_id].payload["promised_delivery_at"])
            carriers.setdefault(shipped[e.order_id], []).append((e.occurred_at // DAY, 1, late, None))
        elif e.type == "order_returned":
            for item in e.payload["items"]:
                products.setdefault(item["product_id"], []).append(
                    (e.occurred_at // DAY, 0, item["quantity"], e.payload["reason"]))
    return products, carriers


def orders_partition(order_id: str, partitions: int) -> int:
    return (murmur2(order_id.encode()) & 0x7FFFFFFF) % partitions


def last_closed_day(events, partitions: int, allowed_lateness_ms: int) -> int:
    """The last day closed once every orders partition's newest delivery or return time, minus the
    lateness, has passed it (the facts the windows count are made of those two kinds of event)."""
    newest: dict[int, int] = {}
    for e in events:
        if e.type in ("order_delivered", "order_returned"):
            p = orders_partition(e.order_id, partitions)
            newest[p] = max(newest.get(p, e.occurred_at), e.occurred_at)
    assert len(newest) == partitions, "the scenario must put deliveries on every orders partition"
    return (min(newest.values()) - allowed_lateness_ms) // DAY - 1


def expected_alerts(subject: str, rows: list, rule: Rule, last_day: int) -> list[dict]:
    """Each day from the first fact's day through `last_day` judged in turn: the alert events."""
    out, episode = [], None
    for day in range(min(d for d, *_ in rows), last_day + 1):
        inside = [r for r in rows if day - rule.window_days < r[0] <= day]
        n, k = sum(r[1] for r in inside), sum(r[2] for r in inside)
        at = (day + 1) * DAY
        if episode is None and n >= rule.min_sample and wilson_lower(k, n, rule.z) > rule.threshold:
            episode = at
            state = "raised"
        elif episode is not None and (n == 0 or k / n <= rule.threshold * rule.clear_factor):
            state = "cleared"
        else:
            continue
        reasons: dict[str, int] = {}
        for r in inside:
            if r[2]:
                reasons[r[3]] = reasons.get(r[3], 0) + r[2]
        out.append({"alert_id": f"{rule.name}:{subject}:{episode}", "state": state, "occurred_at": at,
                    "units": n, "hits": k, "reasons": reasons, "wilson_lower": wilson_lower(k, n, rule.z),
                    "wilson_upper": wilson_upper(k, n, rule.z)})
        if state == "cleared":
            episode = None
    return out
