"""The judging agents: products.facts -> return-rate alerts, carriers.facts -> late-delivery alerts.

Each agent reads a fact or a watermark record. A fact on time at its source is folded into its
subject's daily buckets (deduped by fact_id); a fact late at its source is dropped and counted.
Either moves the watermark the partition keeps for the fact's orders partition; when the minimum
over all orders partitions closes days, the partition's subjects with data within a window of them
are judged on each of them that can change something (alerts/window_fold.py). Raised and cleared
alerts go to alerts.events. One instance per agent (concurrency > 1 can lose messages); scale with
partitions.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alerts import alert_rules, delivery_fold, returns_fold, window_fold
from alerts.metric_labels import bounded
from projections import returns
from streams.app import app, settings, topic
from topics import catalogue, codec

ALERT_SCHEMA = "posvenda.alerts.AlertEvent"
ORDERS_PARTITIONS = catalogue.ORDERS.partitions or settings.partitions  # the sources every window aligns on


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


async def apply_record(kind: Kind, record: dict, partition: int) -> None:
    """A fact or a watermark record reaching window partition `partition`."""
    rule = kind.rule()
    day = apply_fact(kind, rule, record, partition) if "fact_id" in record else None
    await advance_window(kind, rule, partition, record.get("src"), record.get("src_wm"), day)


def subjects_key(kind: Kind, partition: int, day: int) -> str:
    """The subjects of a window partition holding a fact on `day` (dropped with the day)."""
    return f"subjects|{kind.name}|{partition}|{day}"


def apply_fact(kind: Kind, rule, fact: dict, partition: int) -> int | None:
    """Folds a fact into its subject's buckets, unless late or already seen (counted either way);
    returns the fact's day when it was applied."""
    closed = (returns.watermarks_table.get(f"{kind.name}|{partition}") or {}).get("closed_through")
    if window_fold.is_too_late(fact, closed, rule.allowed_lateness_ms):
        returns.ALERT_FACTS.labels(kind.name, "too_late").inc()
        return None
    subject, day = fact["subject"], window_fold.day_of(fact["at"])
    ids_key = f"{kind.name}|{subject}|{day}"
    seen = returns.fact_ids_table.get(ids_key) or []
    if fact["fact_id"] in seen:
        returns.ALERT_FACTS.labels(kind.name, "duplicate").inc()
        return None
    returns.fact_ids_table[ids_key] = [*seen, fact["fact_id"]]
    subjects = returns.fact_ids_table.get(subjects_key(kind, partition, day)) or []
    if subject not in subjects:
        returns.fact_ids_table[subjects_key(kind, partition, day)] = [*subjects, subject]
    state = window_fold.add(kind.table.get(subject) or window_fold.empty(subject, partition), fact)
    for old_day in window_fold.expired_days(state, closed, rule.window_days):
        old_key = f"{kind.name}|{subject}|{old_day}"
        if old_key in returns.fact_ids_table:
            del returns.fact_ids_table[old_key]
    kind.table[subject] = window_fold.prune(state, closed, rule.window_days)
    returns.ALERT_FACTS.labels(kind.name, "applied").inc()
    kind.on_applied(fact)
    return day


async def advance_window(kind: Kind, rule, partition: int, source: int | None, source_wm: int | None,
                         new_day: int | None) -> None:
    """Records the source's watermark (and a day that got data); judges the days the aligned
    watermark closes."""
    mark_key = f"{kind.name}|{partition}"
    mark = returns.watermarks_table.get(mark_key)
    new_mark = mark if new_day is None else window_fold.note_data_day(mark, new_day)
    new_mark, closing = window_fold.advance(new_mark, source, source_wm, ORDERS_PARTITIONS, rule.allowed_lateness_ms)
    if closing is not None:
        new_mark = await judge_days(kind, rule, partition, new_mark, *closing)
    if new_mark != mark:
        returns.watermarks_table[mark_key] = new_mark


async def judge_days(kind: Kind, rule, partition: int, mark: dict, previous: int | None, closed: int) -> dict:
    """Judges the partition's subjects with data near (previous, closed] on each of its days that can
    change something; returns the mark without the data days that expire now."""
    read = window_fold.days_read(mark, previous, closed, rule.window_days)
    days = window_fold.days_to_judge(previous, closed, set(read), rule.window_days)
    subjects = sorted({s for d in (read if days else ()) for s in returns.fact_ids_table.get(
        subjects_key(kind, partition, d)) or ()})
    states = {s: state for s in subjects if (state := kind.table.get(s)) is not None}
    for day in days:
        windows = [window_fold.window(s, day, rule.window_days) for s in states.values()]
        baseline = window_fold.baseline_for(rule, windows)
        for key in sorted(states):
            new, event = kind.step(states[key], day, rule, baseline)
            if event is None:
                continue
            states[key] = kind.table[key] = new
            await publish_alert(event)
    mark, expired = window_fold.expire_data_days(mark, closed, rule.window_days)
    for d in expired:
        if subjects_key(kind, partition, d) in returns.fact_ids_table:
            del returns.fact_ids_table[subjects_key(kind, partition, d)]
    return mark


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
        decoded = returns.decode_record(PRODUCTS.name, record.message.value)
        if decoded is not None:
            await apply_record(PRODUCTS, decoded, record.message.partition)


@app.agent(topic(catalogue.CARRIER_FACTS))
async def judge_late_deliveries(stream):
    async for record in stream.events():
        decoded = returns.decode_record(CARRIERS.name, record.message.value)
        if decoded is not None:
            await apply_record(CARRIERS, decoded, record.message.partition)
