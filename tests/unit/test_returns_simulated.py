"""Simulated traffic folded through the pure pipeline (order facts -> per-product windows -> daily
judgement on an aligned watermark) raises return-rate alerts for exactly the simulator's
problem products, each pointing where the simulator's dominant reason says, and nothing else."""
from __future__ import annotations

import zlib

import pytest

from alerts import alert_rules, order_facts, returns_fold, window_fold

simulate = pytest.importorskip("posvenda.simulate")

PARTITIONS = 4
START_MS = 1_780_000_000_000


def run(events, rule):
    """Orders partitions stamp facts with their watermark; each window partition aligns on all of them."""
    orders, products, sources, marks, alerts = {}, {}, {}, {}, []
    for event in events:
        if event.order_id is None or not event.type.startswith("order_"):
            continue
        source = zlib.crc32(event.order_id.encode()) % PARTITIONS
        orders[event.order_id], facts, _ = order_facts.evolve(orders.get(event.order_id), event)
        if not facts:
            continue
        sources[source] = window_fold.source_watermark(sources.get(source), max(f["at"] for f in facts))
        for fact in facts:
            partition = zlib.crc32(fact["subject"].encode()) % PARTITIONS
            fact = fact | {"src": source, "src_wm": sources[source]}
            mark = marks.get(partition)
            closed = None if mark is None else mark["closed_through"]
            if window_fold.is_too_late(fact, closed, rule.allowed_lateness_ms):
                continue
            state = products.get(fact["subject"]) or window_fold.empty(fact["subject"], partition)
            products[fact["subject"]] = window_fold.prune(window_fold.add(state, fact), closed, rule.window_days)
        for partition in range(PARTITIONS):  # the broadcast watermark reaches every window partition
            marks[partition], closing = window_fold.advance(marks.get(partition), source, sources[source],
                                                            PARTITIONS, rule.allowed_lateness_ms)
            if closing is None:
                continue
            mine = {pid: s for pid, s in products.items() if s["partition"] == partition}
            for day in window_fold.days_to_judge(*closing, window_fold.data_days(mine.values()), rule.window_days):
                for pid in sorted(mine):
                    mine[pid], alert = returns_fold.step(mine[pid], day, rule, rule.baseline_rate)
                    alerts += [alert] if alert else []
            products.update(mine)
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
