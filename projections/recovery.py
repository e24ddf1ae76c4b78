"""Boleto/Pix recovery: the tables, the ORDERS handler that emits due actions, the figures view.

Three tables, all written only while processing a message of the partition they are about (orders
events here, ticks in streams/recovery.py), so each changelog write lands in that partition:

  recovery-orders   order_id -> the order's recovery state (alerts/recovery_fold.py)
  recovery-clock    "wm|<p>" -> partition p's clock (newest event time, watermark, scanned bucket,
                    next orders offset), and the due index "due|<p>|..." of orders by next wake time
  recovery-figures  "<p>" -> partition p's figure partials; GET /recovery sums them

At most once. An action id is recorded in the order's state in the same synchronous step that
decides it (no await between reading and writing the state, so the ticks agent, which shares the
tables, cannot decide it again); the send comes after. In faust-streaming 0.15.3 neither the table
write nor this send is inside the exactly-once transaction: changelogs go through the app's plain
producer (Table.send_changelog -> producer.send_soon), and so does a send to a topic the app does
not consume (the TransactionManager finds no partition metadata for recovery.actions and falls back
to the plain producer); only the input offsets are transactional. After a hard crash the input is
processed again from the committed offset and finds the id already recorded (RocksDB and the
changelog keep the write), so nothing is sent twice; an action still in the producer's buffer at
the crash is lost instead. The figures follow the recorded ids. This holds as long as a restart
gets the tables back: a restart that discards the local state must restore it from the changelogs.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from faust import current_event
from prometheus_client import Counter, Gauge
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from alerts import recovery_fold, recovery_rules
from projections.http import gather_partials, unauthorized
from streams import handlers
from streams.app import app, assigned_partitions, settings, topic
from topics import catalogue, codec

log = logging.getLogger(__name__)

ACTION_SCHEMA = "posvenda.recovery.RecoveryAction"

orders_table = app.Table("recovery-orders", default=None, partitions=settings.partitions)
clock_table = app.Table("recovery-clock", default=None, partitions=settings.partitions)
figures_table = app.Table("recovery-figures", default=None, partitions=settings.partitions)

ACTIONS = Counter("posvenda_recovery_actions_total", "Recovery actions emitted to recovery.actions.", ["method", "step"])
RECOVERED = Counter("posvenda_charges_recovered_total", "Charges paid after a recovery action.", ["method"])
RECOVERED_REVENUE = Counter("posvenda_recovered_revenue_brl_total", "Amount of the recovered charges, in BRL.",
                            ["method"])
STALE_EVENTS = Counter("posvenda_recovery_stale_events_total",
                       "Order events ignored by recovery: their order lies further back than the retention.", ["type"])
WATERMARK_LAG = Gauge("posvenda_recovery_watermark_lag_seconds",
                      "Wall clock minus the recovery watermark, per orders partition.", ["partition"])


def rules() -> recovery_rules.RecoveryRules:
    return recovery_rules.default_rules()


def clock_key(partition: int) -> str:
    return f"wm|{partition}"


@dataclass
class Outcome:
    """What one message changed on a partition: actions to send, figure cells moved."""

    partition: int
    actions: list = field(default_factory=list)
    moves: dict = field(default_factory=dict)

    def move(self, cells: dict) -> None:
        for k, v in cells.items():
            self.moves[k] = self.moves.get(k, 0) + v


# --- synchronous part: decide and record (no await) ----------------------------------------------

def _settle(order_id: str, old: dict | None, new: dict | None, old_slot, watermark: int | None,
            out: Outcome) -> None:
    """Decides the order's due actions, records them, moves the figures and re-files the order."""
    r = rules()
    actions = recovery_fold.decide(new, watermark, r)
    if actions:
        new = recovery_fold.mark_sent(new, actions)
        out.actions.extend(actions)
    out.move(recovery_fold.delta(recovery_fold.contribution(old, r), recovery_fold.contribution(new, r)))
    recovery_fold.index_remove(clock_table, out.partition, order_id, old_slot)
    if new is None or recovery_fold.can_drop(new, watermark, r):
        if orders_table.get(order_id) is not None:
            del orders_table[order_id]
        return
    wake = recovery_fold.next_wake(new, r)
    new = {**new, recovery_fold.SLOT: recovery_fold.index_add(clock_table, out.partition, order_id, wake)}
    orders_table[order_id] = new


def _wake_due(old_clock: dict | None, clock: dict, out: Outcome) -> dict:
    """Settles every order whose wake time the watermark passed; returns the clock with the new scan mark."""
    w = clock["watermark"]
    if w is None or (old_clock is not None and old_clock.get("watermark") == w):
        return clock
    due, scanned = recovery_fold.index_take(clock_table, out.partition, clock["scanned_bucket"], w)
    for order_id in due:
        state = orders_table.get(order_id)
        if state is not None:
            _settle(order_id, state, state, None, w, out)
    return {**clock, "scanned_bucket": scanned}


def apply_event(event, partition: int, orders_offset: int | None, now_ms: int | None = None) -> Outcome:
    """Folds one order event: moves the partition's clock, settles the event's order and every order
    that fell due. Synchronous on purpose (see the module doc).

    `now_ms` caps the event time the clock sees: an event stamped ahead of the wall clock (a skewed
    PSP clock; decoding accepts up to 24 h ahead) must not fire a day of reminders early. Replays
    of the past are not affected."""
    out = Outcome(partition)
    r = rules()
    old_clock = clock_table.get(clock_key(partition))
    seen = event.occurred_at if now_ms is None else min(event.occurred_at, now_ms)
    clock = recovery_fold.observe(old_clock, seen, r)
    if orders_offset is not None:
        clock["next_offset"] = max(clock.get("next_offset") or 0, orders_offset + 1)
    if event.type in recovery_fold.TRACKED_TYPES:
        old = orders_table.get(event.order_id)
        new = recovery_fold.evolve(old, event, r, clock["watermark"])
        if old is None and recovery_fold.is_stale(new, clock["watermark"], r):
            STALE_EVENTS.labels(event.type).inc()
            new = None
        if new is not old and new != old:
            _settle(event.order_id, old, new, (old or {}).get(recovery_fold.SLOT), clock["watermark"], out)
    clock = _wake_due(old_clock, clock, out)
    clock_table[clock_key(partition)] = clock
    _apply_moves(out)
    return out


def apply_tick(partition: int, wall_ms: int, orders_end_offset: int | None) -> Outcome:
    """Moves an idle live partition's watermark with the wall clock (see recovery_fold.tick)."""
    out = Outcome(partition)
    old_clock = clock_table.get(clock_key(partition))
    if old_clock is None:
        return out
    caught_up = orders_end_offset is not None and (old_clock.get("next_offset") or 0) >= orders_end_offset
    clock = recovery_fold.tick(old_clock, wall_ms, caught_up, rules())
    if clock is old_clock or clock["watermark"] == old_clock["watermark"]:
        return out
    clock = _wake_due(old_clock, clock, out)
    clock_table[clock_key(partition)] = clock
    _apply_moves(out)
    return out


def _apply_moves(out: Outcome) -> None:
    if not out.moves:
        return
    key = str(out.partition)
    cells = dict(figures_table.get(key) or {})
    for k, v in out.moves.items():
        cells[k] = cells.get(k, 0) + v
        if cells[k] == 0:
            del cells[k]
    figures_table[key] = cells
    for k, v in out.moves.items():
        kind, method, *rest = k.split("|")
        if v <= 0:
            continue  # a counter never goes down (a late, earlier payment can undo a recovery in the partials)
        if kind == "actions":
            ACTIONS.labels(method, rest[0]).inc(v)
        elif kind == "recovered":
            RECOVERED.labels(method).inc(v)
        elif kind == "revenue_cents":
            RECOVERED_REVENUE.labels(method).inc(v / 100)


# --- asynchronous part: send ---------------------------------------------------------------------

def action_record(a: recovery_fold.Action) -> dict:
    import datetime as dt

    from topics.events import UTC

    def ts(ms: int):
        return dt.datetime.fromtimestamp(ms / 1000, UTC)

    return {"action_id": a.action_id, "type": a.type, "step": a.step, "charge_id": a.charge_id,
            "order_id": a.order_id, "customer_id": a.customer_id, "method": a.method, "amount": float(a.amount),
            "due_at": ts(a.due_at), "scheduled_at": ts(a.scheduled_at), "channels": list(a.channels)}


async def publish(out: Outcome) -> None:
    for action in out.actions:
        await topic(catalogue.RECOVERY_ACTIONS).send(key=action.charge_id.encode(),
                                                     value=codec.encode(ACTION_SCHEMA, action_record(action)))
    if out.actions:
        log.info("recovery: %d action(s) emitted on partition %d", len(out.actions), out.partition)
    if out.moves:
        key = str(out.partition)
        await topic(catalogue.PROJECTION_RECOVERY).send(
            key=key.encode(), value=json.dumps({"partition": out.partition, "cells": figures_table.get(key) or {}}).encode())
    clock = clock_table.get(clock_key(out.partition))
    if clock and clock.get("watermark") is not None:
        WATERMARK_LAG.labels(str(out.partition)).set(max(0.0, time.time() - clock["watermark"] / 1000))


class PendingChargesCollector:
    """posvenda_pending_charges{method}, read from the figures table at scrape time, so the gauge can
    never lag behind the figures (a gauge set on each change missed changes that came by other paths)."""

    def describe(self):  # without it, registering would call collect() at import time
        return [GaugeMetricFamily("posvenda_pending_charges", "", labels=["method"])]

    def collect(self):
        pending: dict[str, int] = {m: 0 for m in rules().methods}
        try:
            partials = local_partials()
        except Exception:  # tables not ready (worker starting): report zeros
            partials = []
        for row in partials:
            for k, v in row["cells"].items():
                if k.startswith("open|"):
                    method = k.split("|")[1]
                    pending[method] = pending.get(method, 0) + v
        family = GaugeMetricFamily("posvenda_pending_charges",
                                   "Unpaid charges with a recovery step still scheduled (this worker's partitions).",
                                   labels=["method"])
        for method, n in sorted(pending.items()):
            family.add_metric([method], n)
        yield family


REGISTRY.register(PendingChargesCollector())


def _current_orders_offset() -> int | None:
    """Offset of the orders.events message being processed (None for messages.events)."""
    event = current_event()
    message = getattr(event, "message", None)
    if message is None or message.topic != settings.topic_name(catalogue.ORDERS):
        return None
    return message.offset


@handlers.on(handlers.ORDERS)
async def track_charges(event, partition: int) -> None:
    """Order events move the partition's recovery clock and the charges; due actions are emitted."""
    if not recovery_fold.is_order_event(event):
        return
    await publish(apply_event(event, partition, _current_orders_offset(), int(time.time() * 1000)))


# --- figures ---------------------------------------------------------------------------------------

def local_partials() -> list[dict]:
    """The orders partitions actively assigned to this worker (not standby copies): figure cells and
    watermark."""
    out = []
    for p in sorted(assigned_partitions(catalogue.ORDERS)):
        cells, clock = figures_table.get(str(p)), clock_table.get(clock_key(p))
        if cells is None and clock is None:
            continue
        out.append({"partition": p, "cells": cells or {}, "watermark": (clock or {}).get("watermark")})
    return out


def merged_cells(partials: list[dict]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for row in partials:
        for k, v in row["cells"].items():
            merged[k] = merged.get(k, 0) + v
    return merged


def figures(cells: dict[str, int], methods) -> dict:
    """The view of merged cells: per method and in total, recovery rate = recovered / targeted."""
    def block(get) -> dict:
        targeted, recovered = get("targeted"), get("recovered")
        return {"charges": get("charges"), "targeted": targeted, "paid": get("paid"), "recovered": recovered,
                "recovered_revenue_brl": round(get("revenue_cents") / 100, 2),
                "recovery_rate": round(recovered / targeted, 4) if targeted else None,
                "pending": get("open"), "actions_after_payment": get("after_payment")}

    all_methods = sorted(set(methods) | {k.split("|")[1] for k in cells})
    out = {"methods": {}, "actions": {}}
    for m in all_methods:
        out["methods"][m] = block(lambda kind, m=m: cells.get(f"{kind}|{m}", 0))
        out["actions"][m] = {k.split("|")[2]: v for k, v in sorted(cells.items()) if k.startswith(f"actions|{m}|")}
    out["total"] = block(lambda kind: sum(v for k, v in cells.items() if k.startswith(f"{kind}|")))
    out["total"]["actions"] = sum(v for k, v in cells.items() if k.startswith("actions|"))
    return out


@app.page("/recovery")
async def recovery_view(web, request):
    """GET /recovery: actions by method and step, charges recovered, recovered revenue (BRL), recovery
    rate (recovered / charges that received an action), pending charges, and each partition's
    watermark; per-partition partials of every worker, summed here."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    if app.rebalancing:
        return web.json({"error": "rebalancing: partitions are moving between workers, retry shortly"}, status=503)
    local = local_partials()
    if request.query.get("scope") == "local":
        return web.json({"partials": local})
    partials = await gather_partials(request, figures_table, "/recovery", local)
    body = figures(merged_cells(partials), rules().methods)
    body["watermarks"] = {str(row["partition"]): row["watermark"] for row in sorted(partials, key=lambda r: r["partition"])
                          if row["watermark"] is not None}
    return web.json(body)
