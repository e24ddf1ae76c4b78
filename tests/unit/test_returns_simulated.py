"""Simulated traffic folded through the pure pipeline (order facts -> per-product windows -> daily
judgement on a per-partition watermark) raises return-rate alerts for exactly the simulator's
problem products, each pointing where the simulator's dominant reason says, and nothing else."""
from __future__ import annotations

import zlib

import pytest

from alerts import alert_rules, order_facts, returns_fold, window_fold

simulate = pytest.importorskip("posvenda.simulate")

PARTITIONS = 4
START_MS = 1_780_000_000_000


def run(events, rule):
    orders, products, marks, alerts = {}, {}, {}, []
    for event in events:
        if event.order_id is None or not event.type.startswith("order_"):
            continue
        orders[event.order_id], facts, _ = order_facts.evolve(orders.get(event.order_id), event)
        for fact in facts:
            partition = zlib.crc32(fact["subject"].encode()) % PARTITIONS
            mark = marks.get(partition)
            closed = None if mark is None else mark["closed_through"]
            if window_fold.is_too_late(fact, closed, rule.window_days):
                continue
            state = products.get(fact["subject"]) or window_fold.empty(fact["subject"], partition)
            products[fact["subject"]] = window_fold.prune(window_fold.add(state, fact), closed, rule.window_days)
            marks[partition], closing = window_fold.advance(mark, fact["at"], rule.allowed_lateness_ms,
                                                            rule.window_days)
            for day in closing:
                for pid, s in sorted(products.items()):
                    if s["partition"] == partition:
                        products[pid], alert = returns_fold.step(s, day, rule, rule.baseline_rate)
                        alerts += [alert] if alert else []
    return alerts


def test_simulated_problem_products_and_only_they_raise_return_rate_alerts():
    rule = alert_rules.config().return_rate
    alerts = run(simulate.generate(3, 30_000, START_MS), rule)
    raised = {a["subject"]: a["details"] for a in alerts if a["state"] == "raised"}
    assert set(raised) == set(simulate.PROBLEM_PRODUCTS)
    for pid, details in raised.items():
        reasons = simulate.PROBLEM_PRODUCTS[pid][4]
        top = max(reasons, key=lambda pair: pair[1])[0]
        assert details["dominant_reason"] == top
        assert details["points_at"] == alert_rules.POINTS_AT[top]
        assert int(details["delivered_units"]) >= rule.min_sample
    ids = [(a["alert_id"], a["state"]) for a in alerts]
    assert len(ids) == len(set(ids))
