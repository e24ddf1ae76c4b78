"""Return rates per product page as pure folds: order facts, daily windows, aligned watermark, Wilson judge."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from alerts import alert_rules, order_facts, returns_fold, window_fold
from alerts.wilson import wilson_interval
from topics.events import Event

DAY = window_fold.DAY_MS
T0 = 20_000 * DAY  # 2024-10-04T00:00Z, a day boundary
RULE = alert_rules.config().return_rate


def ev(type_, at, order_id="o1", **payload):
    return Event(str(uuid.uuid4()), type_, at, "erp", order_id=order_id, payload=payload)


def placed(at, items, order_id="o1", promised_at=None, method="boleto", total=100.0):
    return ev("order_placed", at, order_id, items=[{"product_id": p, "quantity": q, "unit_price": 10.0} for p, q in items],
              total=total, freight=0.0, payment_method=method, installments=1, uf="SP", city="São Paulo",
              carrier=None, promised_delivery_at=promised_at if promised_at is not None else at + 5 * DAY)


def fold(events):
    state, products, carriers = None, [], []
    for e in events:
        state, p, c = order_facts.evolve(state, e)
        products += p
        carriers += c
    return state, products, carriers


# --- Wilson ------------------------------------------------------------------------------------

def test_wilson_matches_published_values():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(1, 2)
    assert (low, high) == (pytest.approx(0.0945, abs=1e-4), pytest.approx(0.9055, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_is_wide_for_a_single_return_and_narrow_for_many():
    # 1 of 2 has a lower bound of 9 %: the minimum sample, not Wilson alone, keeps it quiet
    assert wilson_interval(1, RULE.min_sample)[0] < RULE.threshold(RULE.baseline_rate)
    assert wilson_interval(30, 100)[0] > 0.2


# --- order facts ---------------------------------------------------------------------------------

def test_delivered_units_per_product_once_placed_and_delivered_are_both_known_in_any_order():
    p = placed(T0, [("p1", 2), ("p2", 1), ("p1", 1)])
    d = ev("order_delivered", T0 + 3 * DAY)
    for events in ([p, d], [d, p]):
        _, products, _ = fold(events)
        assert sorted((f["subject"], f["units"], f["at"]) for f in products) == [
            ("p1", 3, T0 + 3 * DAY), ("p2", 1, T0 + 3 * DAY)]
        assert {f["fact_id"] for f in products} == {"delivered:o1:p1", "delivered:o1:p2"}


def test_redelivered_and_second_delivered_events_emit_nothing_more():
    p, d = placed(T0, [("p1", 1)]), ev("order_delivered", T0 + DAY)
    d2 = ev("order_delivered", T0 + 2 * DAY)  # impossible second delivery
    state, products, _ = fold([p, d, d, p, d2])
    assert len(products) == 1 and state["delivered_at"] == T0 + DAY


def test_returned_units_carry_reason_and_are_deduped_by_event_id():
    r = ev("order_returned", T0 + 9 * DAY, items=[{"product_id": "p1", "quantity": 2}], reason="wrong_size")
    _, products, _ = fold([placed(T0, [("p1", 2)]), r, r])
    returned = [f for f in products if f["hits"]]
    assert returned == [{"fact_id": f"returned:{r.event_id}:p1", "subject": "p1", "at": T0 + 9 * DAY, "units": 0,
                         "hits": 2, "reason": "wrong_size"}]


def test_carrier_fact_late_when_delivered_after_the_promise():
    promise = T0 + 5 * DAY - 1000
    for delivered_at, late in ((promise, 0), (promise + 1, 1)):
        events = [placed(T0, [("p1", 1)], promised_at=promise), ev("order_shipped", T0 + DAY, carrier="jadlog",
                                                                   tracking_code="X"),
                  ev("order_delivered", delivered_at)]
        for order in (events, events[::-1]):
            _, _, carriers = fold(order)
            assert carriers == [{"fact_id": "delivery:o1", "subject": "jadlog", "at": delivered_at, "units": 1,
                                 "hits": late, "reason": "late"}]


# --- windows and watermark -----------------------------------------------------------------------

def fact(fact_id, at, units=0, hits=0, reason=None, subject="p1"):
    return {"fact_id": fact_id, "subject": subject, "at": at, "units": units, "hits": hits, "reason": reason}


def test_window_sums_only_the_days_inside_it():
    s = window_fold.empty("p1", 0)
    s = window_fold.add(s, fact("a", T0, units=10))
    s = window_fold.add(s, fact("b", T0 + 5 * DAY, hits=2, reason="defect"))
    s = window_fold.add(s, fact("c", T0 + 30 * DAY, units=4))
    day0 = window_fold.day_of(T0)
    assert window_fold.window(s, day0 + 29, 30) == {"units": 10, "hits": 2, "reasons": {"defect": 2}}
    assert window_fold.window(s, day0 + 30, 30) == {"units": 4, "hits": 2, "reasons": {"defect": 2}}
    assert window_fold.window(s, day0 + 4, 30)["hits"] == 0


LATENESS = 24 * 3600 * 1000


def test_aligned_watermark_closes_a_day_only_when_every_source_partition_passed_it():
    day0 = window_fold.day_of(T0)
    # Given source 0 far ahead (day 40) and source 1 not heard of yet
    mark, closing = window_fold.advance(None, 0, T0 + 40 * DAY, 2, LATENESS)
    # Then nothing closes: a slow partition may still hold facts of any day
    assert closing is None and mark["closed_through"] is None
    # When source 1 reports the end of day 2 + lateness, days up to day0 + 1 close, from the start
    mark, closing = window_fold.advance(mark, 1, T0 + 3 * DAY, 2, LATENESS)
    assert closing == (None, day0 + 1)
    # And an older watermark of a source moves nothing back; the same day closes once
    mark, again = window_fold.advance(mark, 1, T0 + 2 * DAY, 2, LATENESS)
    assert again is None and mark["sources"]["1"] == T0 + 3 * DAY
    mark, closing = window_fold.advance(mark, 1, T0 + 5 * DAY + 1, 2, LATENESS)
    assert closing == (day0 + 1, day0 + 3)


def test_a_source_tells_the_windows_once_per_day_boundary_not_once_per_event():
    assert window_fold.passes_day_boundary(None, T0, LATENESS)
    assert not window_fold.passes_day_boundary(T0 + 1, T0 + DAY - 1, LATENESS)
    assert window_fold.passes_day_boundary(T0 + DAY - 1, T0 + DAY, LATENESS)
    assert window_fold.source_watermark(T0 + 5, T0) == T0 + 5


def test_ticks_move_only_a_source_that_lives_in_the_present():
    now = T0 + 100 * DAY
    assert window_fold.tick_moves_source(now - 3600_000, now, LATENESS)  # a live partition gone quiet
    assert not window_fold.tick_moves_source(now - 5 * DAY, now, LATENESS)  # a backlog of older history
    assert not window_fold.tick_moves_source(None, now, LATENESS)  # never had an event


def test_only_facts_late_at_their_source_are_too_late_whatever_the_window_has_closed():
    day0 = window_fold.day_of(T0)
    on_time = fact("x", T0 + 10 * DAY) | {"src": 0, "src_wm": T0 + 11 * DAY}  # exactly the lateness
    late = fact("y", T0 + 10 * DAY - 1) | {"src": 0, "src_wm": T0 + 11 * DAY}
    assert not window_fold.is_too_late(on_time, day0 + 9, LATENESS)
    assert window_fold.is_too_late(late, None, LATENESS)
    # a fact without its source's watermark is kept unless its day was judged already
    assert window_fold.is_too_late(fact("z", T0 + 10 * DAY), day0 + 10, LATENESS)


def test_days_to_judge_are_every_day_whose_window_holds_data_and_the_first_empty_one_after():
    day0 = window_fold.day_of(T0)
    days = window_fold.days_to_judge(None, day0 + 100, {day0, day0 + 2}, 30)
    assert days == list(range(day0, day0 + 33))
    assert window_fold.days_to_judge(day0 + 31, day0 + 100, {day0, day0 + 2}, 30) == [day0 + 32]


def test_a_close_reads_only_the_data_days_within_a_window_of_it_and_then_forgets_the_expired():
    day0 = window_fold.day_of(T0)
    mark = None
    for d in (day0, day0 + 5, day0 + 40, day0 + 41):
        mark = window_fold.note_data_day(mark, d)
    mark = window_fold.note_data_day(mark, day0 + 5)  # a second fact that day changes nothing
    assert mark["data_days"] == [day0, day0 + 5, day0 + 40, day0 + 41]
    assert window_fold.days_read(mark, None, day0 + 40, 30) == [day0, day0 + 5, day0 + 40]
    assert window_fold.days_read(mark, day0 + 35, day0 + 40, 30) == [day0 + 40]  # reads days >= day0 + 6
    mark, expired = window_fold.expire_data_days(mark, day0 + 40, 30)  # the view reads day0 + 11 ..
    assert expired == [day0, day0 + 5] and mark["data_days"] == [day0 + 40, day0 + 41]


def test_buckets_are_kept_while_the_current_view_still_reads_them():
    day0 = window_fold.day_of(T0)
    closed = day0 + 40  # the view reads days day0 + 11 .. day0 + 40
    s = window_fold.add(window_fold.empty("p1", 0), fact("a", T0 + 10 * DAY, units=1))
    s = window_fold.add(s, fact("b", T0 + 11 * DAY, units=2))
    assert window_fold.expired_days(s, closed, 30) == [day0 + 10]
    assert window_fold.prune(s, closed, 30)["days"] == {str(day0 + 11): {"units": 2, "hits": {}}}


def test_window_counts_exactly_the_units_of_its_days_after_a_late_fact():
    # Given a page with 1 unit delivered on each of 31 days, and its windows closed through day 30
    day0 = window_fold.day_of(T0)
    s = window_fold.empty("filler", 0)
    for i in range(31):
        s = window_fold.add(s, fact(f"d{i}", T0 + i * DAY + 3600_000, units=1, subject="filler"))
    closed = day0 + 30
    # When a fact late at its source reaches the window (dropped), and an on-time one for day 31 follows
    late = fact("late", T0 + 2 * DAY, units=5, subject="filler") | {"src": 0, "src_wm": T0 + 31 * DAY}
    assert window_fold.is_too_late(late, closed, LATENESS)
    s = window_fold.prune(window_fold.add(s, fact("d31", T0 + 31 * DAY, units=1, subject="filler")), closed, 30)
    # Then the view at the last closed day counts the 30 units of days 1..30, counted here day by day
    expected = sum(1 for i in range(32) if closed - 30 < day0 + i <= closed)
    assert expected == 30
    assert returns_fold.rate_view(s, closed, RULE, RULE.baseline_rate)["delivered_units"] == expected


# --- judging -------------------------------------------------------------------------------------

def product(delivered, returns_by_reason, day_at=T0):
    s = window_fold.add(window_fold.empty("p1", 0), fact("d", day_at, units=delivered))
    for i, (reason, n) in enumerate(returns_by_reason.items()):
        s = window_fold.add(s, fact(f"r{i}", day_at, hits=n, reason=reason))
    return s


def test_small_sample_with_a_single_return_never_raises():
    day = window_fold.day_of(T0)
    for delivered in (1, 2, 5, RULE.min_sample - 1):
        _, event = returns_fold.step(product(delivered, {"defect": 1}), day, RULE, RULE.baseline_rate)
        assert event is None


def test_rate_below_the_sound_threshold_does_not_raise_even_with_a_big_sample():
    # 8 % of 100: above the 5 % baseline, but its Wilson lower bound (~4 %) is not above 7 %.
    _, event = returns_fold.step(product(100, {"regret": 8}), window_fold.day_of(T0), RULE, RULE.baseline_rate)
    assert event is None


def test_abnormal_page_raises_once_with_reason_and_target_then_clears_once():
    day = window_fold.day_of(T0)
    s = product(40, {"not_as_described": 9, "defect": 3})
    s, raised = returns_fold.step(s, day, RULE, RULE.baseline_rate)
    assert raised["state"] == "raised" and raised["rule"] == "return_rate" and raised["subject"] == "p1"
    assert raised["alert_id"] == f"return_rate:p1:{window_fold.day_end_ms(day)}"
    assert raised["occurred_at"] == window_fold.day_end_ms(day)
    d = raised["details"]
    assert (d["dominant_reason"], d["points_at"], d["returned_units"], d["delivered_units"]) == (
        "not_as_described", "page", "12", "40")
    assert d["reason_not_as_described"] == "9" and float(d["rate"]) == pytest.approx(0.3)
    s, again = returns_fold.step(s, day + 1, RULE, RULE.baseline_rate)
    assert again is None  # still bad: no second raise
    s = window_fold.add(s, fact("more", T0 + 2 * DAY, units=200))  # 12 / 240 = 5 %
    s, cleared = returns_fold.step(s, day + 2, RULE, RULE.baseline_rate)
    assert cleared["state"] == "cleared" and cleared["alert_id"] == raised["alert_id"]
    assert cleared["occurred_at"] == window_fold.day_end_ms(day + 2)
    s, after = returns_fold.step(s, day + 3, RULE, RULE.baseline_rate)
    assert after is None and s["alert"] is None


def test_alert_clears_when_the_window_slides_past_all_deliveries():
    day = window_fold.day_of(T0)
    s, raised = returns_fold.step(product(40, {"damaged_in_transport": 12}), day, RULE, RULE.baseline_rate)
    assert raised["details"]["points_at"] == "logistics"
    s, cleared = returns_fold.step(s, day + RULE.window_days, RULE, RULE.baseline_rate)
    assert cleared["state"] == "cleared"


def test_dominant_reason_ties_go_to_the_fixed_reason_order():
    assert returns_fold.dominant_reason({"wrong_size": 3, "defect": 3}) == "defect"
    assert returns_fold.dominant_reason({}) is None
    assert [returns_fold.points_at(r) for r in ("defect", "wrong_size", "damaged_in_transport", "regret")] == [
        "product", "page", "logistics", "customer"]


def test_learned_baseline_pools_the_partition_and_falls_back_below_its_minimum():
    learned = replace(RULE, baseline="learned", learned_min_sample=100)
    windows = [{"units": 100, "hits": 10, "reasons": {}}, {"units": 100, "hits": 30, "reasons": {}}]
    assert window_fold.baseline_for(learned, windows) == pytest.approx(0.2)
    assert window_fold.baseline_for(learned, windows[:1][:0]) == RULE.baseline_rate
    assert window_fold.baseline_for(RULE, windows) == RULE.baseline_rate
    # a page at 30 % does not stand out in a catalogue whose pooled rate is 20 %
    _, event = returns_fold.step(product(100, {"defect": 30}), window_fold.day_of(T0), learned, 0.2)
    assert event is None


def test_rate_view_reads_the_window_at_the_last_closed_day():
    s = product(40, {"wrong_size": 12})
    row = returns_fold.rate_view(s, window_fold.day_of(T0), RULE, RULE.baseline_rate)
    assert (row["delivered_units"], row["returned_units"], row["enough_sample"], row["dominant_reason"]) == (
        40, 12, True, "wrong_size")
    assert returns_fold.rate_view(s, None, RULE, RULE.baseline_rate)["delivered_units"] == 0


def test_an_alert_cleared_on_a_window_without_deliveries_says_so():
    day = window_fold.day_of(T0)
    s, raised = returns_fold.step(product(40, {"defect": 12}), day, RULE, RULE.baseline_rate)
    s = window_fold.add(s, fact("late-return", T0 + 20 * DAY, hits=7, reason="defect"))
    s, cleared = returns_fold.step(s, day + RULE.window_days, RULE, RULE.baseline_rate)
    assert cleared["state"] == "cleared"
    assert "no delivered units in 30 days (7 returned units" in cleared["summary"]
    assert "0.0%" not in cleared["summary"] and "7/0" not in cleared["summary"]
    assert cleared["details"]["rate"] == "none"
