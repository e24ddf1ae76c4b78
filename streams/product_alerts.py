"""The judging agents: products.facts -> return-rate alerts, carriers.facts -> late-delivery alerts.

Each agent reads a fact, folds it into its subject's daily buckets (deduped by fact_id), advances the
partition's event-time watermark and, for each day that closes, judges every subject of the
partition (alerts/window_fold.py). Raised and cleared alerts go to alerts.events inside the same
exactly-once transaction as the table writes. One instance per agent (PITFALLS.md: concurrency > 1
can lose messages); scale with partitions.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alerts import alert_rules, delivery_fold, returns_fold, window_fold
from alerts.metric_labels import bounded
from projections import returns
from streams.app import app, topic
from topics import catalogue, codec

ALERT_SCHEMA = "posvenda.alerts.AlertEvent"


@dataclass(frozen=True)
class Kind:
    """What differs between the two judged subjects."""

    name: str
    table: object
    rule: Callable[[], alert_rules.ProportionRule]
    step: Callable[[dict, int, alert_rules.ProportionRule, float], tuple[dict, dict | None]]
    on_applied: Callable[[dict], None]


def _count_delivery(fact: dict) -> None:
    carrier = bounded("carrier", fact["subject"])
    returns.DELIVERIES.labels(carrier).inc()
    returns.LATE_DELIVERIES.labels(carrier).inc(1 if fact["hits"] else 0)  # the series exists at 0


PRODUCTS = Kind(returns.PRODUCT, returns.products_table, lambda: alert_rules.config().return_rate,
                returns_fold.step, lambda fact: None)
CARRIERS = Kind(returns.CARRIER, returns.carriers_table, lambda: alert_rules.config().late_deliveries,
                lambda state, day, rule, baseline: delivery_fold.step(state, day, rule), _count_delivery)


async def apply_fact(kind: Kind, fact: dict, partition: int) -> None:
    rule = kind.rule()
    mark_key = f"{kind.name}|{partition}"
    mark = returns.watermarks_table.get(mark_key)
    closed = None if mark is None else mark["closed_through"]
    if window_fold.is_too_late(fact, closed, rule.window_days):
        returns.ALERT_FACTS.labels(kind.name, "too_late").inc()
        return
    subject, day = fact["subject"], window_fold.day_of(fact["at"])
    ids_key = f"{kind.name}|{subject}|{day}"
    seen = returns.fact_ids_table.get(ids_key) or []
    if fact["fact_id"] in seen:
        returns.ALERT_FACTS.labels(kind.name, "duplicate").inc()
        return
    returns.fact_ids_table[ids_key] = [*seen, fact["fact_id"]]
    state = window_fold.add(kind.table.get(subject) or window_fold.empty(subject, partition), fact)
    for old_day in window_fold.expired_days(state, closed, rule.window_days):
        old_key = f"{kind.name}|{subject}|{old_day}"
        if old_key in returns.fact_ids_table:
            del returns.fact_ids_table[old_key]
    kind.table[subject] = window_fold.prune(state, closed, rule.window_days)
    returns.ALERT_FACTS.labels(kind.name, "applied").inc()
    kind.on_applied(fact)
    new_mark, closing = window_fold.advance(mark, fact["at"], rule.allowed_lateness_ms, rule.window_days)
    if new_mark != mark:
        returns.watermarks_table[mark_key] = new_mark
    for closing_day in closing:
        await judge_day(kind, rule, partition, closing_day)


async def judge_day(kind: Kind, rule, partition: int, day: int) -> None:
    """Judges every subject of the partition on the window ending at `day` (just closed)."""
    states = [(key, state) for key, state in kind.table.items() if state.get("partition") == partition]
    baseline = window_fold.baseline_for(rule, [window_fold.window(s, day, rule.window_days) for _, s in states])
    for key, state in sorted(states):
        new, event = kind.step(state, day, rule, baseline)
        if event is None:
            continue
        kind.table[key] = new
        await publish_alert(event)


async def publish_alert(event: dict) -> None:
    await topic(catalogue.ALERTS).send(key=event["alert_id"].encode(), value=codec.encode(ALERT_SCHEMA, event))
    active_key = f"{event['rule']}|{event['subject']}"
    if event["state"] == "raised":
        returns.active_table[active_key] = event
        returns.ALERTS_RAISED.labels(event["rule"]).inc()
    else:
        if active_key in returns.active_table:
            del returns.active_table[active_key]
        returns.ALERTS_CLEARED.labels(event["rule"]).inc()


@app.agent(topic(catalogue.PRODUCT_FACTS))
async def judge_return_rates(stream):
    async for record in stream.events():
        fact = returns.decode_fact(PRODUCTS.name, record.message.value)
        if fact is not None:
            await apply_fact(PRODUCTS, fact, record.message.partition)


@app.agent(topic(catalogue.CARRIER_FACTS))
async def judge_late_deliveries(stream):
    async for record in stream.events():
        fact = returns.decode_fact(CARRIERS.name, record.message.value)
        if fact is not None:
            await apply_fact(CARRIERS, fact, record.message.partition)
