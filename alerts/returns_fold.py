"""Return rate per product page: the wording and figures of the return_rate rule.

The window arithmetic, the watermark and the raise/clear decision are shared with the carrier rule
(alerts/window_fold.py); what is specific here is what the alert tells operations: which page, the
rate and the sample, the dominant reason and what it points at (the page for not_as_described and
wrong_size, logistics for damaged_in_transport, the product for defect), because those go to
different teams.
"""
from __future__ import annotations

from alerts import window_fold
from alerts.alert_rules import POINTS_AT, RETURN_REASONS


def dominant_reason(reasons: dict[str, int]) -> str | None:
    """The reason with the most returned units; ties go to the earlier reason in RETURN_REASONS."""
    if not reasons or not any(reasons.values()):
        return None
    order = {r: i for i, r in enumerate(RETURN_REASONS)}
    return min(reasons, key=lambda r: (-reasons[r], order.get(r, len(order)), r))


def points_at(reason: str | None) -> str:
    return POINTS_AT.get(reason, "unknown") if reason else "unknown"


def describe(state: dict, numbers: dict, rule) -> tuple[str, str, dict]:
    """(summary, severity, details) of a return-rate judgement.

    A window without deliveries has no rate (returns may still fall in it, of units delivered
    before it): the summary says so instead of printing 0 %."""
    reason = dominant_reason(numbers["reasons"])
    rate = numbers["rate"]
    severity = "critical" if numbers["wilson_lower"] > rule.critical_rate else "warning"
    if rate is None:
        sample = (f"no delivered units in {rule.window_days} days ({numbers['hits']} returned units of earlier "
                  f"deliveries), baseline {numbers['baseline']:.1%}")
    else:
        sample = (f"{rate:.1%} of delivered units returned ({numbers['hits']}/{numbers['units']} in "
                  f"{rule.window_days} days, baseline {numbers['baseline']:.1%})")
    summary = (f"product page {state['subject']}: {sample}; mostly {reason or 'no reason'}, "
               f"points at {points_at(reason)}")
    details = {
        "product_id": state["subject"], "rate": window_fold.rate_text(rate), "returned_units": numbers["hits"],
        "delivered_units": numbers["units"], "window_days": rule.window_days,
        "wilson_lower": f"{numbers['wilson_lower']:.4f}", "wilson_upper": f"{numbers['wilson_upper']:.4f}",
        "baseline": f"{numbers['baseline']:.4f}", "threshold": f"{numbers['threshold']:.4f}",
        "dominant_reason": reason or "none", "points_at": points_at(reason),
    }
    for r in RETURN_REASONS:
        details[f"reason_{r}"] = numbers["reasons"].get(r, 0)
    return summary, severity, details


def step(state: dict, day: int, rule, baseline: float) -> tuple[dict, dict | None]:
    """Judges one product page at the close of `day` (see window_fold.step)."""
    return window_fold.step(state, day, rule, baseline, lambda s, n: describe(s, n, rule))


def rate_view(state: dict, closed_through: int | None, rule, baseline: float) -> dict:
    """One row of GET /return-rates: the window ending at the partition's last closed day."""
    day = closed_through if closed_through is not None else None
    sums = window_fold.window(state, day, rule.window_days) if day is not None else {"units": 0, "hits": 0,
                                                                                      "reasons": {}}
    numbers = window_fold.figures(sums, rule, baseline)
    reason = dominant_reason(numbers["reasons"])
    return {
        "product_id": state["subject"], "as_of": None if day is None else window_fold.day_end_ms(day),
        "window_days": rule.window_days, "delivered_units": numbers["units"], "returned_units": numbers["hits"],
        "rate": numbers["rate"], "wilson_lower": numbers["wilson_lower"], "wilson_upper": numbers["wilson_upper"],
        "enough_sample": numbers["units"] >= rule.min_sample, "baseline": baseline,
        "threshold": numbers["threshold"], "reasons": numbers["reasons"], "dominant_reason": reason,
        "points_at": points_at(reason), "alert": state.get("alert"), "facts_applied": state.get("facts", 0),
    }
