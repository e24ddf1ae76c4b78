"""The operations reports a store's operations team asks for, as pure functions over the read models.

Each report takes the order records (order_history_fold.view), the session records
(visits_fold.view) and the events of customers, NPS answers and support tickets, all from the log,
and returns a Table:
named columns and rows of plain values, which projections/report_export.py writes as CSV, XLSX,
XML or JSON. Statuses come from the order state machine, so a flagged transition (shipped before
paid) counts for nothing here either. Days and hours are local to the business time zone.

Personal data stays out: customers appear by id only (the birthday list gives the day and month
and the age turned, never the birth date or the name; a campaign looks the contact up), and erased
customers are left out.

A log may hold an event more than once (a producer's retry, a file ingested twice): the order and
session folds keep one copy per event_id, and the reports read the other events through `_sorted`,
which does the same, so a duplicate changes no figure.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
AGE_BANDS = ((0, 17, "0-17"), (18, 24, "18-24"), (25, 34, "25-34"), (35, 44, "35-44"), (45, 54, "45-54"),
             (55, 64, "55-64"), (65, 200, "65+"))


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)

    def as_dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Inputs:
    """What every report may read; `today` is the local date the report is made on."""
    orders: list[dict]
    sessions: list[dict]
    events: list  # customer, NPS and ticket Events (see `side_events`)
    timezone: str
    today: dt.date


def _money(value: float) -> float:
    return round(value, 2)


def _average(total: float, n: int) -> float | None:
    return round(total / n, 2) if n else None


def _sorted(events: Iterable, *types: str) -> list:
    """The events of `types` in event time, one per event_id (the first copy read)."""
    unique: dict[str, object] = {}
    for e in events:
        if e.type in types:
            unique.setdefault(e.event_id, e)
    return sorted(unique.values(), key=lambda e: (e.occurred_at, e.event_id))


def _placed(inputs: Inputs) -> list[dict]:
    return [o for o in inputs.orders if o["placed_at"] is not None]


def _local(ms: int, timezone: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone))


def _transition_at(order: dict, event_type: str) -> int | None:
    return next((e["at"] for e in order["timeline"] if e["type"] == event_type and e["kind"] == "transition"
                 and not e["flagged"]), None)


def orders_by_uf(inputs: Inputs) -> Table:
    cells = defaultdict(lambda: [0, 0.0, 0, 0])
    for o in _placed(inputs):
        c = cells[o["uf"] or "unknown"]
        c[0] += 1
        c[1] += o["total"] or 0.0
        c[2] += "shipped" in o["reached"]
        c[3] += o["status"] == "cancelled"
    rows = [(uf, n, _money(rev), _average(rev, n), shipped, cancelled)
            for uf, (n, rev, shipped, cancelled) in sorted(cells.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return Table("orders-by-uf", "Orders by state (UF)",
                 ("uf", "orders", "revenue_brl", "average_ticket_brl", "shipped", "cancelled"), rows)


def payment_methods(inputs: Inputs) -> Table:
    placed = _placed(inputs)
    cells = defaultdict(lambda: [0, 0, 0.0])
    for o in placed:
        c = cells[o["payment_method"] or "unknown"]
        c[0] += 1
        if "paid" in o["reached"]:
            c[1] += 1
            c[2] += o["total"] or 0.0
    rows = [(m, n, round(n / len(placed), 4), paid, round(paid / n, 4), _money(rev), _average(rev, paid))
            for m, (n, paid, rev) in sorted(cells.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return Table("payment-methods", "Payment methods compared: share of orders and how many get paid",
                 ("method", "orders", "share", "paid", "paid_rate", "paid_revenue_brl", "average_paid_ticket_brl"),
                 rows)


def daily_ticket(inputs: Inputs, days: int | None = None) -> Table:
    """Orders, revenue and average ticket per local day of placement; `days`: only the last N days."""
    first = None if days is None else inputs.today - dt.timedelta(days=days - 1)
    cells = defaultdict(lambda: [0, 0.0])
    for o in _placed(inputs):
        day = _local(o["placed_at"], inputs.timezone).date()
        if first is not None and not first <= day <= inputs.today:
            continue
        cells[day][0] += 1
        cells[day][1] += o["total"] or 0.0
    if first is not None:  # every day of the period, also the ones without orders
        for n in range(days):
            cells.setdefault(first + dt.timedelta(days=n), [0, 0.0])
    rows = [(day.isoformat(), n, _money(rev), _average(rev, n)) for day, (n, rev) in sorted(cells.items())]
    title = f"Orders in the last {days} days" if days else "Daily average ticket"
    return Table("last-days" if days else "daily-ticket", title, ("day", "orders", "revenue_brl", "average_ticket_brl"),
                 rows)


def order_value_by_outcome(inputs: Inputs) -> Table:
    """Average order value of the orders that shipped against those cancelled before shipping."""
    cells = {"shipped": [0, 0.0], "cancelled": [0, 0.0]}
    for o in _placed(inputs):
        outcome = "shipped" if "shipped" in o["reached"] else "cancelled" if o["status"] == "cancelled" else None
        if outcome:
            cells[outcome][0] += 1
            cells[outcome][1] += o["total"] or 0.0
    rows = [(k, n, _money(rev), _average(rev, n)) for k, (n, rev) in cells.items()]
    return Table("order-value-by-outcome", "Average order value: shipped vs cancelled",
                 ("outcome", "orders", "value_brl", "average_value_brl"), rows)


def accesses(inputs: Inputs) -> Table:
    """Visits started per weekday and local hour."""
    cells = defaultdict(int)
    for s in inputs.sessions:
        for v in s["visits"]:
            t = _local(v["started_at"], inputs.timezone)
            cells[(t.weekday(), t.hour)] += 1
    rows = [(WEEKDAYS[wd], hour, n) for (wd, hour), n in sorted(cells.items())]
    return Table("accesses", "Accesses (visits) by weekday and hour", ("weekday", "hour", "visits"), rows)


def orders_by_access(inputs: Inputs) -> Table:
    """Orders by the device and channel of the session they were placed in."""
    sessions = {s["session_id"]: s for s in inputs.sessions}
    cells = defaultdict(lambda: [0, 0.0])
    for o in _placed(inputs):
        s = sessions.get(o["session_id"]) or {}
        c = cells[(s.get("device") or "unknown", s.get("channel") or "unknown")]
        c[0] += 1
        c[1] += o["total"] or 0.0
    rows = [(device, channel, n, _money(rev), _average(rev, n))
            for (device, channel), (n, rev) in sorted(cells.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return Table("orders-by-access", "Orders by access type (device and channel)",
                 ("device", "channel", "orders", "revenue_brl", "average_ticket_brl"), rows)


def _profiles(inputs: Inputs) -> dict[str, dict]:
    """Customer id -> the latest registration payload, without the erased customers."""
    profiles, erased = {}, set()
    for e in _sorted(inputs.events, "customer_registered", "customer_erasure_requested"):
        if e.type == "customer_registered":
            profiles[e.customer_id] = e.payload
        elif e.type == "customer_erasure_requested":
            erased.add(e.customer_id)
    return {cid: p for cid, p in profiles.items() if cid not in erased}


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _birth(payload: dict) -> dt.date | None:
    value = payload.get("birth_date")  # dates are ISO strings in the domain (topics/events.py)
    return dt.date.fromisoformat(value) if value else None


def customers_by_age_sex(inputs: Inputs) -> Table:
    cells = defaultdict(int)
    for p in _profiles(inputs).values():
        birth = _birth(p)
        age = age_on(birth, inputs.today) if birth else None
        band = next((label for low, high, label in AGE_BANDS if age is not None and low <= age <= high), "unknown")
        cells[(band, p.get("sex") or "unknown")] += 1
    order = {label: i for i, (_, _, label) in enumerate(AGE_BANDS)}
    rows = [(band, sex, n) for (band, sex), n in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))]
    return Table("customers-by-age-sex", "Customers by age band and sex", ("age_band", "sex", "customers"), rows)


def birthdays(inputs: Inputs, start: dt.date, end: dt.date) -> Table:
    """Customers whose birthday falls between `start` and `end` (inclusive, any year): the day and
    month it falls on (29 February is kept on 1 March in a common year) and the age turned. Two
    numbers rather than a date, so the birth date is not written and a spreadsheet does not
    read "01/03" as a date of its own choosing."""
    if end < start:
        raise ValueError(f"birthdays: the period ends ({end}) before it starts ({start})")
    rows = []
    for cid, p in sorted(_profiles(inputs).items()):
        birth = _birth(p)
        if birth is None:
            continue
        for year in range(start.year, end.year + 1):
            try:
                day = birth.replace(year=year)
            except ValueError:  # 29 February in a common year: the 1st of March
                day = dt.date(year, 3, 1)
            if start <= day <= end:
                rows.append((day, cid, age_on(birth, day)))
    return Table("birthdays", f"Birthdays from {start} to {end}", ("customer_id", "day", "month", "turns"),
                 [(cid, day.day, day.month, turns) for day, cid, turns in sorted(rows)])


def handling_time(inputs: Inputs) -> Table:
    """Average hours from placement to shipment by payment method (the store's part of a delivery)."""
    cells = defaultdict(list)
    for o in _placed(inputs):
        shipped = _transition_at(o, "order_shipped")
        if shipped is not None:
            cells[o["payment_method"] or "unknown"].append((shipped - o["placed_at"]) / 3_600_000)
    rows = []
    for method, hours in sorted(cells.items()):
        hours.sort()
        rows.append((method, len(hours), round(sum(hours) / len(hours), 1), round(hours[len(hours) // 2], 1)))
    return Table("handling-time", "Order handling time (placed to shipped), hours",
                 ("method", "orders_shipped", "average_hours", "median_hours"), rows)


def late_deliveries(inputs: Inputs) -> Table:
    """Deliveries later than promised by carrier and UF, with the store's dispatch time (placed to
    shipped) beside the carrier's transit time: is the bottleneck the carrier or our dispatch?"""
    cells = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for o in _placed(inputs):
        shipped, delivered = _transition_at(o, "order_shipped"), _transition_at(o, "order_delivered")
        if shipped is None or delivered is None or o.get("promised_delivery_at") is None:
            continue
        c = cells[(o.get("carrier") or "unknown", o["uf"] or "unknown")]
        c[0] += 1
        c[1] += delivered > o["promised_delivery_at"]
        c[2] += (shipped - o["placed_at"]) / 3_600_000
        c[3] += (delivered - shipped) / 3_600_000
    rows = [(carrier, uf, n, late, round(late / n, 4), round(dispatch / n, 1), round(transit / n, 1))
            for (carrier, uf), (n, late, dispatch, transit) in sorted(cells.items())]
    return Table("late-deliveries", "Late deliveries by carrier and UF, dispatch vs transit time",
                 ("carrier", "uf", "deliveries", "late", "late_rate", "average_dispatch_hours",
                  "average_transit_hours"), rows)


def nps(inputs: Inputs) -> Table:
    """NPS per local month of the answer: % promoters (9-10) minus % detractors (0-6)."""
    cells = defaultdict(lambda: [0, 0, 0])
    for e in _sorted(inputs.events, "nps_answered"):
        month = _local(e.occurred_at, inputs.timezone).strftime("%Y-%m")
        score = e.payload["score"]
        cells[month][0 if score >= 9 else 1 if score >= 7 else 2] += 1
    rows = []
    for month, (promoters, passives, detractors) in sorted(cells.items()):
        n = promoters + passives + detractors
        rows.append((month, n, promoters, passives, detractors, round(100 * (promoters - detractors) / n, 1)))
    return Table("nps", "Net Promoter Score by month", ("month", "answers", "promoters", "passives", "detractors", "nps"),
                 rows)


def support(inputs: Inputs) -> Table:
    """Tickets by channel and category: first response and resolution times, and how many were a
    customer coming back with the same problem (an earlier ticket of theirs in the same category)."""
    opened, answered, resolved = {}, {}, {}
    for e in _sorted(inputs.events, "ticket_opened", "ticket_answered", "ticket_resolved"):
        number = e.payload["ticket_number"]
        target = {"ticket_opened": opened, "ticket_answered": answered, "ticket_resolved": resolved}[e.type]
        target.setdefault(number, e)  # the earliest of each: a re-sent event changes nothing
    cells = defaultdict(lambda: [0, 0, 0.0, 0, 0.0, 0])
    seen = set()
    for number, e in sorted(opened.items(), key=lambda kv: (kv[1].occurred_at, kv[0])):
        c = cells[(e.payload["channel"], e.payload["category"])]
        c[0] += 1
        if number in answered:
            c[1] += 1
            c[2] += (answered[number].occurred_at - e.occurred_at) / 3_600_000
        if number in resolved:
            c[3] += 1
            c[4] += (resolved[number].occurred_at - e.occurred_at) / 3_600_000
        problem = (e.customer_id, e.payload["category"])
        c[5] += e.customer_id is not None and problem in seen
        seen.add(problem)
    rows = [(channel, category, n, nans, _average(tans, nans), nres, _average(tres, nres), repeated)
            for (channel, category), (n, nans, tans, nres, tres, repeated) in sorted(cells.items())]
    return Table("support", "Support tickets: response and resolution time by channel and category",
                 ("channel", "category", "tickets", "answered", "average_first_response_hours", "resolved",
                  "average_resolution_hours", "repeated_problem"), rows)


REPLENISHMENT_CONFIG = Path(__file__).resolve().parent.parent / "alerts" / "replenishment.toml"


def replenishment_days(path: Path = REPLENISHMENT_CONFIG) -> dict[str, int]:
    """Product id -> re-buy interval in days, from alerts/replenishment.toml."""
    import tomllib

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    days = doc.get("products", {})
    bad = [pid for pid, n in days.items() if not isinstance(n, int) or isinstance(n, bool) or n <= 0]
    if bad:
        raise ValueError(f"{path}: [products] {bad[0]}: the interval must be a whole number of days > 0")
    return dict(days)


def replenishment(inputs: Inputs, start: dt.date, end: dt.date, days: dict[str, int] | None = None) -> Table:
    """Reminders due between `start` and `end`: for each customer and product with a re-buy
    interval, the latest delivery of it plus the interval (a returned order does not count)."""
    if end < start:
        raise ValueError(f"replenishment: the period ends ({end}) before it starts ({start})")
    days = replenishment_days() if days is None else days
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    for o in _placed(inputs):
        delivered = _transition_at(o, "order_delivered")
        if delivered is None or not o["customer_id"] or "returned" in o["reached"]:
            continue
        for item in o.get("products") or ():
            key = (o["customer_id"], item["product_id"])
            if item["product_id"] in days and (key not in latest or latest[key] < (delivered, o["order_id"])):
                latest[key] = (delivered, o["order_id"])
    rows = []
    for (cid, pid), (delivered, oid) in latest.items():
        last = _local(delivered, inputs.timezone).date()
        due = last + dt.timedelta(days=days[pid])
        if start <= due <= end:
            rows.append((due.isoformat(), cid, pid, last.isoformat(), oid))
    return Table("replenishment", f"Replenishment reminders due from {start} to {end}",
                 ("due_on", "customer_id", "product_id", "last_delivered_on", "order_id"), sorted(rows))


REPORTS: dict[str, Callable[..., Table]] = {
    "orders-by-uf": orders_by_uf,
    "payment-methods": payment_methods,
    "daily-ticket": daily_ticket,
    "last-days": lambda inputs, days=14: daily_ticket(inputs, days),
    "order-value-by-outcome": order_value_by_outcome,
    "accesses": accesses,
    "orders-by-access": orders_by_access,
    "customers-by-age-sex": customers_by_age_sex,
    "birthdays": birthdays,
    "handling-time": handling_time,
    "late-deliveries": late_deliveries,
    "nps": nps,
    "support": support,
    "replenishment": replenishment,
}


SIDE_TYPES = frozenset({"customer_registered", "customer_erasure_requested", "nps_answered", "ticket_opened",
                        "ticket_answered", "ticket_resolved"})


def side_events(events: Iterable) -> list:
    """The events the reports read beside the order and session records."""
    return [e for e in events if e.type in SIDE_TYPES]
