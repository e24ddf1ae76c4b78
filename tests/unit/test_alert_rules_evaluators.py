"""The periodic evaluators: a funnel step below its own baseline, boleto share vs paid revenue, and
late deliveries per carrier judged like return rates."""
from __future__ import annotations

from dataclasses import replace

from alerts import alert_rules, delivery_fold, funnel_baseline, window_fold

FUNNEL = alert_rules.config().funnel_drop
BOLETO = alert_rules.config().boleto_share
LATE = alert_rules.config().late_deliveries
DAY = window_fold.DAY_MS


def days(n, shipping, payment, start=1):
    return {f"2026-11-{start + i:02d}": {"shipping": shipping, "payment": payment} for i in range(n)}


def test_funnel_series_sums_one_cell_per_day_from_merged_counts():
    counts = {("all", "2026-11-02", "all", "shipping"): 10, ("all", "2026-11-01", "all", "shipping"): 4,
              ("device", "2026-11-01", "mobile", "shipping"): 99, ("all", "2026-11-01", "all", "payment"): 2}
    assert funnel_baseline.funnel_series(counts) == {"2026-11-01": {"shipping": 4, "payment": 2},
                                                     "2026-11-02": {"shipping": 10}}


def test_a_real_drop_on_the_last_complete_day_is_flagged_and_the_open_day_is_ignored():
    series = days(14, 100, 50)  # baseline 50 %
    series["2026-11-15"] = {"shipping": 200, "payment": 40}  # 20 %: freight driving customers away
    series["2026-11-16"] = {"shipping": 3, "payment": 0}  # still being filled: not judged
    finding = funnel_baseline.conversion_drop(series, "shipping", "payment", FUNNEL)
    assert finding["day"] == "2026-11-15" and finding["dropped"]
    assert finding["baseline"] == 0.5 and finding["conversion"] == 0.2 and finding["upper"] < 0.35


def test_a_small_dip_or_a_small_sample_is_not_a_drop():
    series = days(14, 100, 50)
    series["2026-11-15"] = {"shipping": 100, "payment": 42}
    series["2026-11-16"] = {}
    assert not funnel_baseline.conversion_drop(series, "shipping", "payment", FUNNEL)["dropped"]
    series["2026-11-15"] = {"shipping": FUNNEL.min_day_sessions - 1, "payment": 0}
    assert funnel_baseline.conversion_drop(series, "shipping", "payment", FUNNEL) is None
    young = days(1, 100, 50)
    young["2026-11-02"] = {"shipping": 100, "payment": 1}
    young["2026-11-03"] = {}
    assert funnel_baseline.conversion_drop(young, "shipping", "payment", FUNNEL) is None  # baseline too thin


def test_baseline_uses_only_the_configured_number_of_previous_days():
    series = days(30, 100, 10)  # an old, bad month ...
    series.update({f"2026-12-{i:02d}": {"shipping": 100, "payment": 50} for i in range(1, 15)})  # ... then 14 good days
    series["2026-12-15"] = {"shipping": 100, "payment": 45}
    series["2026-12-16"] = {}
    finding = funnel_baseline.conversion_drop(series, "shipping", "payment", FUNNEL)
    assert finding["baseline"] == 0.5 and not finding["dropped"]


def boleto_day(day, boleto, card, placed, paid):
    return {"day": day, "orders": {"boleto": boleto, "credit_card": card}, "placed_value": placed, "paid_value": paid}


def test_boleto_share_fires_only_when_paid_revenue_does_not_follow():
    bad = [boleto_day(f"d{i}", 30, 20, 5000.0, 2000.0) for i in range(BOLETO.window_days)]
    assert funnel_baseline.boleto_revenue_gap(bad, BOLETO)["firing"]
    following = [boleto_day(f"d{i}", 30, 20, 5000.0, 4500.0) for i in range(BOLETO.window_days)]
    assert not funnel_baseline.boleto_revenue_gap(following, BOLETO)["firing"]
    low_share = [boleto_day(f"d{i}", 10, 40, 5000.0, 2000.0) for i in range(BOLETO.window_days)]
    assert not funnel_baseline.boleto_revenue_gap(low_share, BOLETO)["firing"]
    few = [boleto_day("d0", 3, 1, 500.0, 0.0)]
    assert funnel_baseline.boleto_revenue_gap(few, BOLETO) is None


def test_boleto_window_reads_only_the_last_days():
    old_bad = [boleto_day(f"d0{i}", 30, 20, 5000.0, 1000.0) for i in range(5)]
    recent_good = [boleto_day(f"d1{i}", 30, 20, 5000.0, 4800.0) for i in range(BOLETO.window_days)]
    assert not funnel_baseline.boleto_revenue_gap(old_bad + recent_good, BOLETO)["firing"]


def test_transition_raises_and_clears_each_episode_once():
    episode, outcomes = None, []
    for at, firing in enumerate([False, True, True, False, False, True]):
        episode, outcome = funnel_baseline.transition(episode, firing, at)
        outcomes.append(outcome)
    assert outcomes == [None, "raised", None, "cleared", None, "raised"] and episode == 5


def test_late_carrier_raises_with_enough_deliveries_and_clears_when_the_week_slides_on():
    t0 = 20_000 * DAY
    s = window_fold.empty("correios_pac", 1)
    for i in range(40):
        s = window_fold.add(s, {"fact_id": f"d{i}", "subject": "correios_pac", "at": t0 + i * 1000, "units": 1,
                                "hits": int(i % 2 == 0), "reason": "late"})
    day = window_fold.day_of(t0)
    s, raised = delivery_fold.step(s, day, LATE)
    assert raised["alert_id"] == f"late_deliveries:correios_pac:{window_fold.day_end_ms(day)}"
    assert raised["details"]["late_deliveries"] == "20" and raised["details"]["deliveries"] == "40"
    s, nothing = delivery_fold.step(s, day + LATE.window_days - 1, LATE)
    assert nothing is None
    s, cleared = delivery_fold.step(s, day + LATE.window_days, LATE)
    assert cleared["state"] == "cleared" and cleared["alert_id"] == raised["alert_id"]


def test_a_few_late_deliveries_of_a_small_carrier_do_not_page():
    t0 = 20_000 * DAY
    s = window_fold.empty("loggi", 0)
    for i in range(LATE.min_sample - 1):
        s = window_fold.add(s, {"fact_id": f"d{i}", "subject": "loggi", "at": t0, "units": 1, "hits": 1,
                                "reason": "late"})
    assert delivery_fold.step(s, window_fold.day_of(t0), LATE)[1] is None
    stricter = replace(LATE, min_sample=5)
    assert delivery_fold.step(s, window_fold.day_of(t0), stricter)[1]["state"] == "raised"
