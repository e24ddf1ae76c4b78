"""Periodic evaluators over daily series: a funnel step below its own baseline, and a high boleto
share while paid revenue does not follow.

Both are pure functions of series the projections already hold (funnel step counts per business day;
placed and paid figures per day), judged on the latest *complete* day so that a half-finished day
never looks like a drop. They feed Prometheus gauges (projections/returns.py) whose rules page
operations; `transition` turns a series of judgements into raise/clear episodes for callers that
want events.

Why Wilson here too: a day's conversion on 40 sessions is noisy; "the upper bound of today's
conversion is below the baseline" says the drop is not sampling noise.
"""
from __future__ import annotations

from alerts.wilson import wilson_interval


def funnel_series(counts: dict[tuple, int], dimension: str = "all", value: str = "all") -> dict[str, dict[str, int]]:
    """{day: {step: sessions}} of one funnel cell from merged funnel counts {(dim, day, value, step): n}."""
    series: dict[str, dict[str, int]] = {}
    for (dim, day, cell_value, step), n in counts.items():
        if dim == dimension and cell_value == value:
            steps = series.setdefault(day, {})
            steps[step] = steps.get(step, 0) + n
    return dict(sorted(series.items()))


def latest_complete_day(days) -> str | None:
    """The day before the latest day with data (the latest one is still being filled)."""
    ordered = sorted(days)
    return ordered[-2] if len(ordered) >= 2 else None


def conversion_drop(series: dict[str, dict[str, int]], from_step: str, to_step: str, rule,
                    day: str | None = None) -> dict | None:
    """Judges from_step -> to_step on `day` (default: the latest complete day) against the pooled
    conversion of the rule.baseline_days days before it. None when either sample is too small.

    Returns {"day", "from_step", "to_step", "sessions", "conversion", "upper", "baseline", "dropped"}.
    """
    day = day or latest_complete_day(series)
    if day is None or day not in series:
        return None
    earlier = [d for d in sorted(series) if d < day][-rule.baseline_days:]
    base_from = sum(series[d].get(from_step, 0) for d in earlier)
    base_to = sum(series[d].get(to_step, 0) for d in earlier)
    day_from, day_to = series[day].get(from_step, 0), series[day].get(to_step, 0)
    if base_from < rule.min_baseline_sessions or day_from < rule.min_day_sessions:
        return None
    baseline = base_to / base_from
    upper = wilson_interval(day_to, day_from, rule.confidence_z)[1]
    return {"day": day, "from_step": from_step, "to_step": to_step, "sessions": day_from,
            "conversion": day_to / day_from, "upper": upper, "baseline": baseline,
            "dropped": upper < baseline * (1 - rule.max_drop)}


def boleto_revenue_gap(days: list[dict], rule) -> dict | None:
    """Judges the last rule.window_days of daily figures
    {"day", "orders": {method: n}, "placed_value": BRL, "paid_value": BRL}.

    Alerts when boleto is more than rule.max_share of placed orders while paid revenue is below
    rule.min_paid_ratio of placed revenue (unpaid boletos piling up). None below rule.min_orders.
    """
    window = sorted(days, key=lambda d: d["day"])[-rule.window_days:]
    orders = sum(sum(d["orders"].values()) for d in window)
    if orders < rule.min_orders:
        return None
    boleto = sum(d["orders"].get("boleto", 0) for d in window)
    placed = sum(d["placed_value"] for d in window)
    paid = sum(d["paid_value"] for d in window)
    share = boleto / orders
    paid_ratio = paid / placed if placed else 1.0
    return {"orders": orders, "boleto_share": share, "paid_ratio": paid_ratio,
            "firing": share > rule.max_share and paid_ratio < rule.min_paid_ratio}


def transition(episode_start_ms: int | None, firing: bool, at_ms: int) -> tuple[int | None, str | None]:
    """(open episode start, "raised" | "cleared" | None): each episode is raised once and cleared once."""
    if firing and episode_start_ms is None:
        return at_ms, "raised"
    if not firing and episode_start_ms is not None:
        return None, "cleared"
    return episode_start_ms, None
