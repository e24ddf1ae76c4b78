"""Late deliveries per carrier: the wording and figures of the late_deliveries rule.

A delivery is late when order_delivered came after the order's promised_delivery_at (the end of the
promised day); the carrier is the one of order_shipped (alerts/order_facts.py). Judged with the same
window, watermark and Wilson decision as return rates (alerts/window_fold.py): the question for
logistics is "is this carrier's late share above the threshold beyond sampling noise", and the
per-carrier share tells a carrier bottleneck from a dispatch one (all carriers late at once).
"""
from __future__ import annotations

from alerts import window_fold


def describe(state: dict, numbers: dict, rule) -> tuple[str, str, dict]:
    """(summary, severity, details) of a late-delivery judgement; a window without deliveries says so."""
    rate = numbers["rate"]
    severity = "critical" if numbers["wilson_lower"] > rule.critical_rate else "warning"
    if rate is None:
        sample = f"no deliveries in {rule.window_days} days"
    else:
        sample = (f"{rate:.1%} of deliveries late ({numbers['hits']}/{numbers['units']} in {rule.window_days} days, "
                  f"threshold {numbers['threshold']:.1%})")
    summary = f"carrier {state['subject']}: {sample}"
    details = {
        "carrier": state["subject"], "rate": window_fold.rate_text(rate), "late_deliveries": numbers["hits"],
        "deliveries": numbers["units"], "window_days": rule.window_days,
        "wilson_lower": f"{numbers['wilson_lower']:.4f}", "wilson_upper": f"{numbers['wilson_upper']:.4f}",
        "threshold": f"{numbers['threshold']:.4f}", "points_at": "logistics",
    }
    return summary, severity, details


def step(state: dict, day: int, rule) -> tuple[dict, dict | None]:
    """Judges one carrier at the close of `day` against the configured threshold."""
    return window_fold.step(state, day, rule, rule.baseline_rate, lambda s, n: describe(s, n, rule))


def carrier_view(state: dict, closed_through: int | None, rule) -> dict:
    sums = (window_fold.window(state, closed_through, rule.window_days) if closed_through is not None
            else {"units": 0, "hits": 0, "reasons": {}})
    numbers = window_fold.figures(sums, rule, rule.baseline_rate)
    return {"carrier": state["subject"], "deliveries": numbers["units"], "late_deliveries": numbers["hits"],
            "rate": numbers["rate"], "wilson_lower": numbers["wilson_lower"],
            "enough_sample": numbers["units"] >= rule.min_sample, "alert": state.get("alert"),
            "facts_applied": state.get("facts", 0)}
