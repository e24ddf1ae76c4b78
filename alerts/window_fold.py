"""Rates over sliding event-time windows of whole days, judged when a day closes on a watermark.

The shared machinery of the stream-judged alerts (return rate per product page, late deliveries per
carrier). A *fact* is one idempotent contribution to a subject's rate, re-keyed by subject upstream:

    {"fact_id": str, "subject": str, "at": ms, "units": int, "hits": int, "reason": str | None}

(units delivered, and units returned for a reason; or one delivery, late or not).

Why daily buckets and a watermark rather than Faust windowed tables: Faust expires windows on the
wall clock (PITFALLS.md). Here a subject keeps one bucket per UTC day, only for the days a future
judgement can still read, and each partition keeps a watermark = latest fact time - allowed lateness.
Day D closes when the watermark passes its end; the window ending at D is then judged for every
subject of the partition. Replaying the same facts closes the same days in the same order, so the
same alerts come out with the same ids.

Duplicates are caught by the caller with the fact ids seen per (subject, day), a set bounded by the
window because it is dropped with its day (see `expired_days`).
"""
from __future__ import annotations

from alerts.wilson import wilson_interval

DAY_MS = 24 * 3600 * 1000


def day_of(ms: int) -> int:
    """UTC day number (days since 1970-01-01) of an event time."""
    return ms // DAY_MS


def day_end_ms(day: int) -> int:
    """The instant a day closes: the start of the next day."""
    return (day + 1) * DAY_MS


# --- a subject's buckets ------------------------------------------------------------------------

def empty(subject: str, partition: int) -> dict:
    """A subject's state; `partition` is the facts partition that owns it (sweeps filter on it)."""
    return {"subject": subject, "partition": partition, "days": {}, "alert": None, "facts": 0}


def horizon_day(closed_through: int | None, window_days: int) -> int | None:
    """The oldest day a future judgement reads (the next day to close is closed_through + 1)."""
    if closed_through is None:
        return None
    return closed_through + 2 - window_days


def is_too_late(fact: dict, closed_through: int | None, window_days: int) -> bool:
    """A fact older than every window still to be judged can change nothing: it is dropped."""
    horizon = horizon_day(closed_through, window_days)
    return horizon is not None and day_of(fact["at"]) < horizon


def add(state: dict, fact: dict) -> dict:
    """The subject's state with the fact's units and hits in the bucket of its day (caller dedupes)."""
    day = str(day_of(fact["at"]))
    bucket = state["days"].get(day, {"units": 0, "hits": {}})
    hits = dict(bucket["hits"])
    if fact.get("hits"):
        reason = fact.get("reason") or "unknown"
        hits[reason] = hits.get(reason, 0) + fact["hits"]
    days = dict(state["days"])
    days[day] = {"units": bucket["units"] + fact.get("units", 0), "hits": hits}
    return {**state, "days": days, "facts": state.get("facts", 0) + 1}


def expired_days(state: dict, closed_through: int | None, window_days: int) -> list[int]:
    horizon = horizon_day(closed_through, window_days)
    if horizon is None:
        return []
    return sorted(int(d) for d in state["days"] if int(d) < horizon)


def prune(state: dict, closed_through: int | None, window_days: int) -> dict:
    """Drops the buckets no future window reads."""
    old = expired_days(state, closed_through, window_days)
    if not old:
        return state
    gone = {str(d) for d in old}
    return {**state, "days": {d: b for d, b in state["days"].items() if d not in gone}}


def window(state: dict | None, day: int, window_days: int) -> dict:
    """Sums over the days [day - window_days + 1, day]: {"units", "hits": total, "reasons": {reason: n}}."""
    units, reasons = 0, {}
    for key, bucket in ((state or {}).get("days") or {}).items():
        if day - window_days < int(key) <= day:
            units += bucket["units"]
            for reason, n in bucket["hits"].items():
                reasons[reason] = reasons.get(reason, 0) + n
    return {"units": units, "hits": sum(reasons.values()), "reasons": reasons}


# --- the partition's watermark -----------------------------------------------------------------

def advance(mark: dict | None, fact_at: int, allowed_lateness_ms: int, window_days: int) -> tuple[dict, list[int]]:
    """(new watermark state, the days that close now, oldest first).

    mark = {"max_at": latest fact time, "closed_through": last closed day}. The first fact of a
    partition only sets the mark (no subject has data in an earlier day). A jump of many days judges
    only the last window_days + 1 of them: earlier windows could only hold facts that arrived after
    their day had closed.
    """
    max_at = fact_at if mark is None else max(mark["max_at"], fact_at)
    closed = day_of(max_at - allowed_lateness_ms) - 1
    if mark is None or mark.get("closed_through") is None:
        return {"max_at": max_at, "closed_through": closed}, []
    previous = mark["closed_through"]
    if closed <= previous:
        return {"max_at": max_at, "closed_through": previous}, []
    first = max(previous + 1, closed - window_days)
    return {"max_at": max_at, "closed_through": closed}, list(range(first, closed + 1))


# --- judging -----------------------------------------------------------------------------------

def pooled_rate(windows: list[dict]) -> tuple[int, int]:
    """(hits, units) summed over subjects: the data of a learned baseline."""
    return sum(w["hits"] for w in windows), sum(w["units"] for w in windows)


def baseline_for(rule, windows: list[dict]) -> float:
    """The configured baseline, or the pooled rate of the partition's subjects when learned and enough."""
    if rule.baseline != "learned":
        return rule.baseline_rate
    hits, units = pooled_rate(windows)
    if units < rule.learned_min_sample:
        return rule.baseline_rate
    return hits / units


def judge(alert: dict | None, sums: dict, rule, baseline: float) -> str | None:
    """"raise", "clear" or None for one subject's window; at most one transition per call.

    Raise: at least rule.min_sample units and Wilson lower bound > rule.threshold(baseline).
    Clear: the window is empty, or the observed rate <= rule.clear_rate(baseline).
    """
    units, hits = sums["units"], sums["hits"]
    if alert is None:
        if units >= rule.min_sample and wilson_interval(hits, units, rule.confidence_z)[0] > rule.threshold(baseline):
            return "raise"
        return None
    if units == 0 or hits / units <= rule.clear_rate(baseline):
        return "clear"
    return None


def figures(sums: dict, rule, baseline: float) -> dict:
    """The numbers behind a judgement, as shown on /return-rates and in an alert's details."""
    units, hits = sums["units"], sums["hits"]
    lower, upper = wilson_interval(hits, units, rule.confidence_z)
    return {"units": units, "hits": hits, "rate": hits / units if units else None, "wilson_lower": lower,
            "wilson_upper": upper, "baseline": baseline, "threshold": rule.threshold(baseline),
            "reasons": dict(sorted(sums["reasons"].items()))}


def alert_id(rule_name: str, subject: str, episode_start_ms: int) -> str:
    """Raised and cleared events of one episode share this id; a replay gives the same one."""
    return f"{rule_name}:{subject}:{episode_start_ms}"


def step(state: dict, day: int, rule, baseline: float, describe) -> tuple[dict, dict | None]:
    """Judges a subject at the close of `day`: (new state, alert event record or None).

    `describe(subject_state, figures) -> (summary, severity, details)` is the rule's own wording.
    The event is a posvenda.alerts.AlertEvent record; `state["alert"]` remembers the open episode
    so that each episode is raised once and cleared once.
    """
    sums = window(state, day, rule.window_days)
    decision = judge(state.get("alert"), sums, rule, baseline)
    if decision is None:
        return state, None
    at = day_end_ms(day)
    numbers = figures(sums, rule, baseline)
    summary, severity, details = describe(state, numbers)
    if decision == "raise":
        episode = at
        new_alert = {"episode_start_ms": episode, "severity": severity}
    else:
        episode = state["alert"]["episode_start_ms"]
        severity = state["alert"]["severity"]
        new_alert = None
    subject = state["subject"]
    event = {
        "alert_id": alert_id(rule.name, subject, episode), "state": "raised" if decision == "raise" else "cleared",
        "rule": rule.name, "subject": subject, "occurred_at": at, "severity": severity,
        "summary": summary if decision == "raise" else f"cleared: {summary}",
        "details": {k: str(v) for k, v in details.items()},
    }
    return {**state, "alert": new_alert}, event
