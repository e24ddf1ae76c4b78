"""Return rates per product page, late deliveries per carrier and the active alerts: the tables, the
ORDERS handler that re-keys order facts onto products.facts / carriers.facts, the HTTP views and
the Prometheus metrics. The judging agents are in streams/product_alerts.py.

Tables (all JSON dicts, str keys):
  alert-orders             order_id -> what the order's facts need (alerts/order_facts.py)
  return-rate-products     product_id -> daily buckets and the open alert episode (window_fold)
  late-delivery-carriers   carrier -> same, for late deliveries
  alert-fact-ids           "kind|subject|day" -> fact ids seen that day (dedupe, dropped with the day),
                           and "subjects|kind|partition|day" -> the subjects with a fact that day (so
                           closing a day reads only them; dropped with the day)
  alert-watermarks         "kind|partition" -> {"sources": {orders partition: watermark}, "closed_through"}
                           of a facts partition (written by the judging agents), and
                           "source|partition" -> {"watermark", "tick_offset"} of an orders partition
                           (written by the ORDERS handler and the ticks agent while processing it)
  alerts-active            "rule|subject" -> the raised AlertEvent record, until cleared
"""
from __future__ import annotations

import json
import logging
import time
from typing import ClassVar

from prometheus_client import Counter
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from alerts import alert_rules, delivery_fold, funnel_baseline, order_facts, returns_fold, window_fold
from projections.http import page_of, unauthorized
from streams import handlers
from streams.app import app, settings, topic
from topics import catalogue

log = logging.getLogger(__name__)

PRODUCT, CARRIER = "product", "carrier"
ORDER_TYPES = frozenset({"order_placed", "order_paid", "order_shipped", "order_delivered", "order_returned"})

orders_table = app.Table("alert-orders", default=None, partitions=settings.partitions)
products_table = app.Table("return-rate-products", default=None, partitions=settings.partitions)
carriers_table = app.Table("late-delivery-carriers", default=None, partitions=settings.partitions)
fact_ids_table = app.Table("alert-fact-ids", default=None, partitions=settings.partitions)
watermarks_table = app.Table("alert-watermarks", default=None, partitions=settings.partitions)
active_table = app.Table("alerts-active", default=None, partitions=settings.partitions)

ALERTS_RAISED = Counter("posvenda_alerts_raised_total", "Alerts raised on alerts.events.", ["rule"])
ALERTS_CLEARED = Counter("posvenda_alerts_cleared_total", "Alerts cleared on alerts.events.", ["rule"])
DELIVERIES = Counter("posvenda_deliveries_total", "Deliveries judged for lateness.", ["carrier"])
LATE_DELIVERIES = Counter("posvenda_late_deliveries_total", "Deliveries after the promised date.", ["carrier"])
ALERT_FACTS = Counter("posvenda_alert_facts_total", "Facts reaching the alert windows, by outcome "
                      "(applied, duplicate, too_late, invalid).", ["kind", "outcome"])
WATERMARK_RECORDS = Counter("posvenda_alert_watermarks_sent_total", "Watermark records broadcast to the alert "
                            "windows (one per orders partition, day boundary and window partition).", ["kind"])
PLACED_ORDERS = Counter("posvenda_placed_orders_total", "Orders placed, once per order.", ["payment_method"])
PLACED_VALUE = Counter("posvenda_placed_order_value_brl_total", "Total of orders placed (BRL).", ["payment_method"])
PAID_VALUE = Counter("posvenda_paid_order_value_brl_total", "Amount of orders paid (BRL), once per order.",
                     ["payment_method"])


# --- ORDERS: keep what the facts need, re-key them by product and carrier ---------------------

FACT_TOPICS = {PRODUCT: catalogue.PRODUCT_FACTS, CARRIER: catalogue.CARRIER_FACTS}


def lateness_ms(kind: str) -> int:
    config = alert_rules.config()
    return (config.return_rate if kind == PRODUCT else config.late_deliveries).allowed_lateness_ms


def source_key(partition: int) -> str:
    return f"source|{partition}"


def source_watermark(partition: int) -> int | None:
    return (watermarks_table.get(source_key(partition)) or {}).get("watermark")


async def advance_source(partition: int, candidate: int) -> int:
    """Moves orders partition `partition`'s watermark to `candidate` (never back) and, for each
    window kind whose closing day this passes, tells every window partition. Returns the watermark.
    Called only while processing a message of that orders partition (orders or ticks)."""
    record = watermarks_table.get(source_key(partition)) or {}
    previous = record.get("watermark")
    current = window_fold.source_watermark(previous, candidate)
    if current != previous:
        watermarks_table[source_key(partition)] = {**record, "watermark": current}
        for kind, t in FACT_TOPICS.items():
            if window_fold.passes_day_boundary(previous, current, lateness_ms(kind)):
                await broadcast_watermark(kind, t, partition, current)
    return current


async def tick_source(partition: int, wall_watermark: int, orders_offset: int | None) -> None:
    """A wall-clock tick that moved a live, caught-up orders partition's recovery watermark.

    It moves the partition's alert watermark to the tick's only when that watermark is already
    within the allowed lateness of it (the partition lives in the present: an older backlog is never
    made late by today's clock), and only once the partition stayed quiet for a whole tick interval
    (no orders event between two such ticks: caught up for a moment while events are still being
    written is not idle). `orders_offset` is the next orders offset the partition will read."""
    record = watermarks_table.get(source_key(partition)) or {}
    if "tick_offset" not in record or record["tick_offset"] != orders_offset:
        watermarks_table[source_key(partition)] = {**record, "tick_offset": orders_offset}
        return
    lateness = min(lateness_ms(kind) for kind in FACT_TOPICS)
    if window_fold.tick_moves_source(record.get("watermark"), wall_watermark, lateness):
        await advance_source(partition, wall_watermark)


async def broadcast_watermark(kind: str, t, source: int, watermark: int) -> None:
    """One watermark record to each partition of a facts topic, after the facts sent before it."""
    value = json.dumps({"src": source, "src_wm": watermark}).encode()
    for target in range(t.partitions or settings.partitions):
        await topic(t).send(key=None, value=value, partition=target)
    WATERMARK_RECORDS.labels(kind).inc(t.partitions or settings.partitions)


@handlers.on(handlers.ORDERS)
async def forward_alert_facts(event, partition: int) -> None:
    """Order events -> per-product and per-carrier facts (each emitted once, deterministic fact_id),
    stamped with the orders partition and its watermark: the newest fact time the partition emitted.

    Fact times, not every order event's: a payment_expired scheduled days after its order would
    otherwise make the deliveries read after it late."""
    if event.type not in ORDER_TYPES:
        return
    old = orders_table.get(event.order_id)
    new, product_facts, carrier_facts = order_facts.evolve(old, event)
    if new == old:
        return
    orders_table[event.order_id] = new
    if order_facts.newly_placed(old, new):
        method = order_facts.method_label(new["method"])
        PLACED_ORDERS.labels(method).inc()
        PLACED_VALUE.labels(method).inc(max(0.0, float(new["total"] or 0)))
    if order_facts.newly_paid(old, new):
        PAID_VALUE.labels(order_facts.method_label(event.payload.get("method"))).inc(
            max(0.0, float(event.payload.get("amount") or 0)))
    facts = [(PRODUCT, f) for f in product_facts] + [(CARRIER, f) for f in carrier_facts]
    if not facts:
        return
    previous = source_watermark(partition)
    watermark = window_fold.source_watermark(previous, max(fact["at"] for _, fact in facts))
    stamp = {"src": partition, "src_wm": watermark}
    for kind, fact in facts:
        await topic(FACT_TOPICS[kind]).send(key=fact["subject"].encode(), value=json.dumps(fact | stamp).encode())
    if watermark != previous:
        await advance_source(partition, watermark)  # after the facts: a window hears of them first


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def decode_record(kind: str, value: bytes | None) -> dict | None:
    """A fact or a watermark record ({"src", "src_wm"} without fact_id) from its JSON bytes, or None
    (counted as invalid) when it is neither."""
    try:
        record = json.loads(value)
        ok = isinstance(record, dict) and all(_count(record.get(k)) for k in ("src", "src_wm") if k in record)
        if ok and "fact_id" in record:
            ok = (isinstance(record["fact_id"], str) and isinstance(record.get("subject"), str)
                  and all(_count(record.get(k)) for k in ("at", "units", "hits")))
        elif ok:
            ok = "src" in record and "src_wm" in record
    except (TypeError, ValueError):
        ok = False
    if not ok:
        ALERT_FACTS.labels(kind, "invalid").inc()
        log.warning("invalid %s fact of %d bytes ignored", kind, len(value or b""))
        return None
    return record


# --- reading ------------------------------------------------------------------------------------

def closed_through(kind: str, partition: int) -> int | None:
    mark = watermarks_table.get(f"{kind}|{partition}")
    return None if mark is None else mark.get("closed_through")


def _states(table) -> list[dict]:
    return [state for _, state in sorted(table.items())]


def product_baselines(states: list[dict], rule) -> dict[int, float]:
    """The return-rate baseline of each partition at its last closed day (configured or learned)."""
    out = {}
    for partition in {s["partition"] for s in states}:
        day = closed_through(PRODUCT, partition)
        windows = [window_fold.window(s, day, rule.window_days) for s in states
                   if s["partition"] == partition and day is not None]
        out[partition] = window_fold.baseline_for(rule, windows)
    return out


def return_rates() -> list[dict]:
    rule = alert_rules.config().return_rate
    states = _states(products_table)
    baselines = product_baselines(states, rule)
    return [returns_fold.rate_view(s, closed_through(PRODUCT, s["partition"]), rule, baselines[s["partition"]])
            for s in states]


def late_deliveries() -> list[dict]:
    rule = alert_rules.config().late_deliveries
    return [delivery_fold.carrier_view(s, closed_through(CARRIER, s["partition"]), rule)
            for s in _states(carriers_table)]


def active_alerts() -> list[dict]:
    return [alert for _, alert in sorted(active_table.items())]


@app.page("/return-rates")
async def return_rates_view(web, request):
    """GET /return-rates?offset=&limit=&enough_sample=1 : per product page, the window ending at the
    last closed day: delivered and returned units, rate, Wilson bounds, reasons, open alert."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    rows = return_rates()
    if request.query.get("enough_sample") in ("1", "true"):
        rows = [r for r in rows if r["enough_sample"]]
    return web.json(page_of(request, rows))


@app.page("/late-deliveries")
async def late_deliveries_view(web, request):
    """GET /late-deliveries?offset=&limit= : per carrier, deliveries and late ones in the window."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    return web.json(page_of(request, late_deliveries()))


@app.page("/alerts")
async def alerts_view(web, request):
    """GET /alerts : the alerts raised and not yet cleared, by rule and subject."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    alerts = active_alerts()
    return web.json({"count": len(alerts), "alerts": alerts})


# --- Prometheus: gauges computed from the tables at scrape time --------------------------------

class AlertsCollector:
    """Gauges read from the tables when scraped, so they follow rebalances and never go stale.

    Product labels only for pages with at least min_delivered units in the window (bounded by the
    catalogue); carriers and funnel step pairs are small fixed sets.
    """

    def describe(self):  # without it, registering would call collect() at import time
        return [GaugeMetricFamily(name, doc) for name, doc in self.DOCS.items()]

    DOCS: ClassVar[dict[str, str]] = {
        "posvenda_return_rate_ratio": "Returned / delivered units of a product page in the window (enough sample only).",
        "posvenda_return_rate_wilson_lower_ratio": "Wilson lower bound of the return rate (enough sample only).",
        "posvenda_return_rate_baseline_ratio": "Catalogue baseline return rate used by the alert.",
        "posvenda_late_delivery_ratio": "Late share of a carrier's deliveries in the window (enough sample only).",
        "posvenda_alerts_active": "Alerts raised and not cleared, by rule.",
        "posvenda_funnel_conversion_ratio": "Conversion between two funnel steps on the last complete day.",
        "posvenda_funnel_conversion_upper_ratio": "Wilson upper bound of that conversion.",
        "posvenda_funnel_conversion_baseline_ratio": "Pooled conversion of the days before (the baseline).",
    }

    FUNNEL_REFRESH_SECONDS = 60.0  # the funnel table is large and its last complete day moves daily

    def __init__(self):
        self._funnel_cache: tuple[float, dict] | None = None

    def _funnel_series(self) -> dict:
        """Funnel counts of the dimension "all" per day, re-read at most once a minute (scrapes are 5 s)."""
        now = time.monotonic()
        if self._funnel_cache is None or now - self._funnel_cache[0] > self.FUNNEL_REFRESH_SECONDS:
            from projections import funnel  # read-only: the funnel's merged counts

            self._funnel_cache = (now, funnel_baseline.funnel_series(funnel.merged_counts()))
        return self._funnel_cache[1]

    def collect(self):
        families = {name: GaugeMetricFamily(name, doc, labels=self._labels(name)) for name, doc in self.DOCS.items()}
        try:
            self._fill(families)
        except Exception:  # a scrape must not fail because a table is recovering
            log.exception("alert metrics incomplete")
        return list(families.values())

    @staticmethod
    def _labels(name: str) -> list[str]:
        if name.startswith("posvenda_return_rate_") and name != "posvenda_return_rate_baseline_ratio":
            return ["product"]
        if name == "posvenda_late_delivery_ratio":
            return ["carrier"]
        if name == "posvenda_alerts_active":
            return ["rule"]
        if name.startswith("posvenda_funnel_"):
            return ["from_step", "to_step"]
        return []

    def _fill(self, f) -> None:
        config = alert_rules.config()
        counts = {rule: 0 for rule in alert_rules.STREAM_RULES}
        for alert in active_alerts():
            counts[alert["rule"]] = counts.get(alert["rule"], 0) + 1
        for rule, n in sorted(counts.items()):
            f["posvenda_alerts_active"].add_metric([rule], n)
        rows = return_rates()
        if config.return_rate.baseline == "configured" or not rows:
            f["posvenda_return_rate_baseline_ratio"].add_metric([], config.return_rate.baseline_rate)
        else:
            f["posvenda_return_rate_baseline_ratio"].add_metric([], rows[0]["baseline"])
        for row in rows:
            if row["enough_sample"]:
                f["posvenda_return_rate_ratio"].add_metric([row["product_id"]], row["rate"])
                f["posvenda_return_rate_wilson_lower_ratio"].add_metric([row["product_id"]], row["wilson_lower"])
        for row in late_deliveries():
            if row["enough_sample"]:
                f["posvenda_late_delivery_ratio"].add_metric([row["carrier"]], row["rate"])
        for from_step, to_step in config.funnel_drop.pairs:
            finding = funnel_baseline.conversion_drop(self._funnel_series(), from_step, to_step, config.funnel_drop)
            if finding:
                f["posvenda_funnel_conversion_ratio"].add_metric([from_step, to_step], finding["conversion"])
                f["posvenda_funnel_conversion_upper_ratio"].add_metric([from_step, to_step], finding["upper"])
                f["posvenda_funnel_conversion_baseline_ratio"].add_metric([from_step, to_step], finding["baseline"])


REGISTRY.register(AlertsCollector())
