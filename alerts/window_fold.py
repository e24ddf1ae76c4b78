"""Rates over sliding event-time windows of whole days, judged when a day closes on an aligned watermark.

The shared machinery of the stream-judged alerts (return rate per product page, late deliveries per
carrier). A *fact* is one idempotent contribution to a subject's rate, re-keyed by subject upstream
from an orders partition (its *source*):

    {"fact_id": str, "subject": str, "at": ms, "units": int, "hits": int, "reason": str | None,
     "src": orders partition, "src_wm": that partition's watermark when it emitted the fact,
     i.e. the newest time of any fact it emitted so far, this one included}

(units delivered, and units returned for a reason; or one delivery, late or not). A *watermark
record* {"src", "src_wm"} carries only the second part; the orders side broadcasts one to every
window partition each time a source's watermark passes a day boundary (and ticks advance it on an
idle live partition), so a window never waits on a source that sends it no facts.

Why aligned watermarks: facts reach a window partition from every orders partition, and those are
read unevenly (a replay may read one weeks ahead of another). A window therefore keeps the latest
watermark of each source and closes day D only when the minimum over all sources, minus the allowed
lateness, passes the end of D. A fact that was on time at its source (at >= src_wm - lateness) can
then never meet a closed day: the window's minimum is at most the src_wm its source had when it
emitted the fact. Only facts late at their source are dropped, and that is decided by the orders
log alone, so a replay at any speed closes the same days on the same facts and raises the same
alerts with the same ids as living through the log.

Why daily buckets and a watermark rather than Faust windowed tables: Faust expires windows on the
wall clock. Here a subject keeps one bucket per UTC day, only for the days a judgement or the
current view can still read.

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
    """The oldest day still read: by the window ending at the last closed day (the current view) and
    by every later judgement."""
    if closed_through is None:
        return None
    return closed_through + 1 - window_days


def late_at_source(fact: dict, allowed_lateness_ms: int) -> bool:
    """Late when it happened: older than its source partition's watermark minus the lateness."""
    src_wm = fact.get("src_wm")
    return src_wm is not None and fact["at"] < src_wm - allowed_lateness_ms


def is_too_late(fact: dict, closed_through: int | None, allowed_lateness_ms: int) -> bool:
    """Dropped: late at its source, or its day already judged here (which alignment rules out for a
    fact on time at its source; it can only come from a fact without a source watermark)."""
    if late_at_source(fact, allowed_lateness_ms):
        return True
    return closed_through is not None and day_of(fact["at"]) <= closed_through


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


# --- watermarks: each source's, and the window partition's aligned one --------------------------

def source_watermark(previous: int | None, candidate: int) -> int:
    """A source partition's watermark moves only forward: the newest time of a fact it emitted (or
    the wall-clock bound of a tick on an idle live partition)."""
    return candidate if previous is None else max(previous, candidate)


def tick_moves_source(source_wm: int | None, tick_wm: int, allowed_lateness_ms: int) -> bool:
    """Whether a wall-clock tick may move an idle source's watermark: only a source whose own
    watermark is within the lateness of the wall clock. A source still in the past (a replay, a
    backlog of older history) moves with its events alone, so reading speed never makes a fact late."""
    return source_wm is not None and tick_wm - source_wm <= allowed_lateness_ms


def closing_day(watermark: int, allowed_lateness_ms: int) -> int:
    """The last day a watermark closes: the day before the one holding watermark - lateness."""
    return day_of(watermark - allowed_lateness_ms) - 1


def passes_day_boundary(previous: int | None, current: int, allowed_lateness_ms: int) -> bool:
    """Whether a source's watermark moving from `previous` to `current` closes a further day, the
    moment the windows must hear of it (once per source and day, not once per event)."""
    return previous is None or closing_day(current, allowed_lateness_ms) > closing_day(previous, allowed_lateness_ms)


def aligned(sources: dict, partitions: int) -> int | None:
    """The minimum watermark over all source partitions; None while one has never reported."""
    marks = [sources.get(str(p)) for p in range(partitions)]
    return None if any(m is None for m in marks) else min(marks)


def advance(mark: dict | None, source: int | None, source_wm: int | None, partitions: int,
            allowed_lateness_ms: int) -> tuple[dict, tuple[int | None, int] | None]:
    """(new mark, the days that close now as (previous closed day, new closed day), or None).

    mark = {"sources": {str(partition): watermark}, "closed_through": last closed day, "data_days":
    the days holding a fact}. The closed days are those through closing_day(aligned watermark);
    previous is None at the first close.
    """
    sources = dict((mark or {}).get("sources") or {})
    if source is not None and source_wm is not None:
        sources[str(source)] = source_watermark(sources.get(str(source)), source_wm)
    previous = (mark or {}).get("closed_through")
    low = aligned(sources, partitions)
    closed = None if low is None else closing_day(low, allowed_lateness_ms)
    if closed is None or (previous is not None and closed <= previous):
        return {**(mark or {}), "sources": sources, "closed_through": previous}, None
    return {**(mark or {}), "sources": sources, "closed_through": closed}, (previous, closed)


# --- which days hold data: so that closing a day reads only the subjects it concerns ------------

def note_data_day(mark: dict | None, day: int) -> dict:
    """The mark with `day` among the partition's days holding a fact (mark["data_days"])."""
    days = (mark or {}).get("data_days") or []
    return dict(mark or {}) if day in days else {**(mark or {}), "data_days": sorted([*days, day])}


def days_read(mark: dict, previous: int | None, closed: int, window_days: int) -> list[int]:
    """The data days that judging (previous, closed] reads: those within a window of it."""
    first = None if previous is None else previous + 1 - window_days
    return [d for d in mark.get("data_days") or [] if d <= closed and (first is None or d >= first)]


def expire_data_days(mark: dict, closed: int, window_days: int) -> tuple[dict, list[int]]:
    """(the mark without the data days no view or judgement reads any more, those days)."""
    horizon = horizon_day(closed, window_days)
    days = mark.get("data_days") or []
    expired = [d for d in days if d < horizon]
    return ({**mark, "data_days": [d for d in days if d >= horizon]} if expired else mark), expired


def data_days(states) -> set[int]:
    """The days holding a bucket in any of the subjects' states."""
    return {int(day) for state in states for day in (state.get("days") or {})}


def days_to_judge(previous: int | None, closed: int, days_with_data: set[int], window_days: int) -> list[int]:
    """The days in (previous, closed] whose judgement can change something, oldest first.

    Judging day D reads the days (D - window_days, D]; a day whose window is empty for every
    subject can raise nothing and clears nothing that the first empty day after the last data day
    (d + window_days, included) has not cleared already. So judging these days is judging every day.
    """
    first = -(10 ** 9) if previous is None else previous + 1
    out = set()
    for d in days_with_data:
        out.update(range(max(d, first), min(d + window_days, closed) + 1))
    return sorted(out)


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


def rate_text(rate: float | None) -> str:
    """An alert detail's rate: four decimals, or "none" for a window without units."""
    return "none" if rate is None else f"{rate:.4f}"


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
