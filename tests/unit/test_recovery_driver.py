"""The storage side of recovery (projections/recovery.py) on plain dicts instead of Faust tables: the
due index finds exactly what a brute-force scan of every order finds, each action once, and the
figure partials equal the sum of the orders' contributions."""
import random
import uuid

import pytest

from alerts import recovery_fold as fold
from alerts import recovery_rules
from projections import recovery
from topics.events import Event

RULES = recovery_rules.load()
MIN, H, DAY = 60_000, 3_600_000, 86_400_000
T0 = 1_741_615_200_000  # 2025-03-10T14:00Z


@pytest.fixture
def tables(monkeypatch):
    t = {"orders": {}, "clock": {}, "figures": {}}
    monkeypatch.setattr(recovery, "orders_table", t["orders"])
    monkeypatch.setattr(recovery, "clock_table", t["clock"])
    monkeypatch.setattr(recovery, "figures_table", t["figures"])
    return t


def ev(type_, at, payload, order):
    return Event(str(uuid.uuid4()), type_, at, "psp", None, "c-" + order, order, payload)


def scenario(seed: int, orders: int = 60) -> list[Event]:
    """Orders with a boleto or Pix charge, paid at a random time or never, some paid twice, some with
    a second charge; arrival order shuffled within the allowed lateness."""
    rng = random.Random(seed)
    events = []
    for n in range(orders):
        order = f"o-{n}"
        at = T0 + rng.randrange(0, 3 * DAY)
        method = rng.choice(["boleto", "pix"])
        due = at + (rng.choice([1, 2, 3]) * DAY if method == "boleto" else rng.choice([30 * MIN, H, DAY]))
        amount = round(rng.uniform(20, 2000), 2)
        events.append(ev("order_placed", at - MIN, {"items": [], "total": amount, "freight": 0.0,
                                                     "payment_method": method, "uf": "SP", "city": "x",
                                                     "promised_delivery_at": at + 5 * DAY}, order))
        events.append(ev("payment_pending", at, {"charge_id": f"ch-{n}", "method": method, "amount": amount,
                                                 "due_at": due}, order))
        if rng.random() < 0.15:
            events.append(ev("payment_pending", due + H, {"charge_id": f"ch-{n}b", "method": method,
                                                          "amount": amount, "due_at": due + 2 * DAY}, order))
        if rng.random() < 0.6:
            paid_at = at + rng.randrange(0, 8 * DAY)
            for _ in range(2 if rng.random() < 0.2 else 1):
                events.append(ev("order_paid", paid_at, {"charge_id": f"ch-{n}", "method": method, "amount": amount},
                                 order))
                paid_at += rng.randrange(MIN, H)
    events.sort(key=lambda e: e.occurred_at + rng.randrange(0, RULES.allowed_lateness_ms))  # late, within lateness
    return events


def brute_force(events) -> set[str]:
    """Decides every order at every event, no index: the reference."""
    clock, states, sent = None, {}, set()
    for e in events:
        clock = fold.observe(clock, e.occurred_at, RULES)
        if e.type in fold.TRACKED_TYPES:
            states[e.order_id] = fold.evolve(states.get(e.order_id), e, RULES)
        for order_id, state in states.items():
            actions = fold.decide(state, clock["watermark"], RULES)
            sent |= {a.action_id for a in actions}
            if state:
                states[order_id] = fold.mark_sent(state, actions)
    return sent


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_driven_emission_equals_brute_force(tables, seed):
    events = scenario(seed)
    emitted = []
    for offset, e in enumerate(events):
        emitted += [a.action_id for a in recovery.apply_event(e, 0, offset).actions]
    assert len(emitted) == len(set(emitted)), "an action was emitted twice"
    assert set(emitted) == brute_force(events)
    assert emitted, "the scenario should emit something"
    # figures = the sum of the contributions of the orders still held (none dropped: W is within retention)
    expected: dict = {}
    for state in tables["orders"].values():
        for k, v in fold.contribution(state, RULES).items():
            expected[k] = expected.get(k, 0) + v
    assert tables["figures"]["0"] == {k: v for k, v in expected.items() if v}
    # replaying every event again changes nothing
    again = [a for offset, e in enumerate(events) for a in recovery.apply_event(e, 0, offset).actions]
    assert again == []


def test_ticks_move_an_idle_caught_up_partition_only(tables):
    issued = T0
    pix = ev("payment_pending", issued, {"charge_id": "px", "method": "pix", "amount": 50.0,
                                         "due_at": issued + 30 * MIN}, "o-1")
    assert recovery.apply_event(pix, 0, 7).actions == []
    wall = issued + 21 * MIN  # reminder at due - 15 min = issued + 15 min; wall - 5 min is past it
    assert recovery.apply_tick(0, wall, orders_end_offset=9).actions == []  # offsets 8.. not consumed yet
    assert recovery.apply_tick(1, wall, orders_end_offset=0).actions == []  # a partition never seen
    assert [a.action_id for a in recovery.apply_tick(0, wall, orders_end_offset=8).actions] == ["px:reminder"]
    assert recovery.apply_tick(0, wall + MIN, orders_end_offset=8).actions == []
    assert tables["clock"]["wm|0"]["watermark"] == wall + MIN - RULES.idle_lateness_ms


def test_old_states_are_dropped_and_figures_kept(tables):
    e = ev("payment_pending", T0, {"charge_id": "ch", "method": "boleto", "amount": 10.0, "due_at": T0 + DAY}, "o-1")
    recovery.apply_event(e, 0, 0)
    late = ev("order_invoiced", T0 + 60 * DAY, {"invoice_number": "1"}, "o-2")
    out = recovery.apply_event(late, 0, 1)
    assert [a.step for a in out.actions] == ["last_call", "new_boleto"]  # due tomorrow: no 24 h reminder
    push = ev("order_invoiced", T0 + 90 * DAY, {"invoice_number": "2"}, "o-2")
    recovery.apply_event(push, 0, 2)
    assert "o-1" not in tables["orders"]
    assert tables["figures"]["0"]["actions|boleto|last_call"] == 1
    assert not [k for k in tables["clock"] if k.startswith("due|")]


def test_an_event_stamped_in_the_future_does_not_run_the_clock_ahead_of_now(tables):
    pix = ev("payment_pending", T0, {"charge_id": "px", "method": "pix", "amount": 50.0, "due_at": T0 + 30 * MIN}, "o-1")
    recovery.apply_event(pix, 0, 0, now_ms=T0 + MIN)
    skewed = ev("order_invoiced", T0 + 3 * H, {"invoice_number": "1"}, "o-2")  # a clock 3 h ahead
    assert recovery.apply_event(skewed, 0, 1, now_ms=T0 + 2 * MIN).actions == []
    assert tables["clock"]["wm|0"]["watermark"] == T0 + 2 * MIN - RULES.allowed_lateness_ms


def test_figures_view_sums_partitions_and_computes_the_rate():
    partials = [{"partition": 0, "cells": {"charges|boleto": 3, "targeted|boleto": 2, "recovered|boleto": 1,
                                           "revenue_cents|boleto": 123456, "actions|boleto|reminder": 2}, "watermark": 5},
                {"partition": 1, "cells": {"charges|boleto": 1, "targeted|boleto": 2, "recovered|boleto": 1,
                                           "revenue_cents|boleto": 100, "open|pix": 1}, "watermark": 7}]
    body = recovery.figures(recovery.merged_cells(partials), ["boleto", "pix"])
    assert body["methods"]["boleto"] == {"charges": 4, "targeted": 4, "paid": 0, "recovered": 2,
                                         "recovered_revenue_brl": 1235.56, "recovery_rate": 0.5, "pending": 0,
                                         "actions_after_payment": 0}
    assert body["methods"]["pix"]["recovery_rate"] is None and body["methods"]["pix"]["pending"] == 1
    assert body["actions"] == {"boleto": {"reminder": 2}, "pix": {}}
    assert body["total"]["actions"] == 2 and body["total"]["recovered_revenue_brl"] == 1235.56


def test_the_same_old_log_folded_again_emits_nothing_and_moves_no_figure(tables):
    # Given a month of orders folded once, and a newer event that lets their states go
    log = scenario(7)
    first = []
    for offset, e in enumerate(sorted(log, key=lambda e: e.occurred_at)):
        first += recovery.apply_event(e, 0, offset).actions
    recovery.apply_event(ev("order_invoiced", T0 + 120 * DAY, {"invoice_number": "x"}, "o-late"), 0, len(log))
    assert first and not tables["orders"], "every state dropped after the retention"
    figures = dict(tables["figures"]["0"])
    # When the same log arrives again (a backfill, a second replay)
    again = []
    for offset, e in enumerate(log, start=len(log) + 1):
        again += recovery.apply_event(e, 0, offset).actions
    # Then no customer hears about the past again and the figures stand
    assert again == [] and tables["figures"]["0"] == figures and not tables["orders"]
