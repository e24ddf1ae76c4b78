"""Operations reports end to end: simulated traffic in the real broker, `posvenda report` run as an
operator would, each export format read back with its own reader, and every figure compared with
an oracle computed here from the generated events (orders' statuses by the independent state
machine of test_visits_customers_orders_e2e, not by projections/)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from posvenda.simulate import generate
from tests.conftest import REPO, settings_env, wait_until
from tests.e2e.test_visits_customers_orders_e2e import expected_orders, publish

TZ = ZoneInfo("America/Sao_Paulo")
START_MS = 1_741_611_600_000  # 2025-03-10T13:00Z
TODAY = "2025-03-20"


def report(settings, tmp_path, name: str, suffix: str, *extra) -> bytes:
    out = tmp_path / f"{name}.{suffix}"
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "report", name, "--today", TODAY, "--out", str(out),
                           *extra], env=settings_env(settings), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"report {name}:" in done.stderr and "rows written" in done.stderr
    return out.read_bytes()


def first_placed(events) -> dict:
    placed = {}
    for e in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        if e.type == "order_placed":
            placed.setdefault(e.order_id, e)
    return placed


def expected_by_uf(events) -> dict:
    """{uf: [orders, revenue, shipped, cancelled]} from the events and the independent state machine."""
    orders, want = expected_orders(events), defaultdict(lambda: [0, 0.0, 0, 0])
    for oid, e in first_placed(events).items():
        w = want[e.payload["uf"]]
        w[0] += 1
        w[1] += e.payload["total"]
        w[2] += "shipped" in orders[oid]["reached"]
        w[3] += orders[oid]["status"] == "cancelled"
    return {uf: [n, round(rev, 2), s, c] for uf, (n, rev, s, c) in want.items()}


def test_reports_from_the_log_match_the_events(settings, tmp_path):
    # Given simulated traffic (with late, out-of-order and impossible transitions) in the broker
    events = list(generate(11, 2000, START_MS, impossible_fraction=0.1))
    publish(settings, events)
    orders = expected_orders(events)
    placed = first_placed(events)
    assert len(placed) >= 30 and any(o["flagged"] for o in orders.values())

    # When the orders-by-uf report is exported as CSV, it counts every order of each UF
    want = expected_by_uf(events)
    rows = list(csv.DictReader(io.StringIO(report(settings, tmp_path, "orders-by-uf", "csv").decode())))
    got = {r["uf"]: [int(r["orders"]), float(r["revenue_brl"]), int(r["shipped"]), int(r["cancelled"])] for r in rows}
    assert got == want
    assert [r["uf"] for r in rows] == sorted(want, key=lambda uf: (-want[uf][0], uf)), "busiest state first"

    # and payment methods as XLSX: share of orders and the share of them that got paid
    sheet = load_workbook(io.BytesIO(report(settings, tmp_path, "payment-methods", "xlsx"))).active
    header, *body = [list(r) for r in sheet.iter_rows(values_only=True)]
    got = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    by_method = defaultdict(list)
    for oid, e in placed.items():
        by_method[e.payload["payment_method"]].append(orders[oid])
    assert set(got) == set(by_method)
    for method, mine in by_method.items():
        paid = [o for o in mine if "paid" in o["reached"]]
        assert got[method]["orders"] == len(mine) and got[method]["paid"] == len(paid), method
        assert got[method]["share"] == round(len(mine) / len(placed), 4), method
        assert abs(got[method]["paid_revenue_brl"] - sum(o["total"] for o in paid)) < 0.01, method

    # and the orders of the last 14 days as JSON, one row per local day, empty days included
    body = json.loads(report(settings, tmp_path, "last-days", "json", "--days", "14"))
    today = dt.date.fromisoformat(TODAY)
    per_day = defaultdict(int)
    for e in placed.values():
        day = dt.datetime.fromtimestamp(e.occurred_at / 1000, TZ).date()
        if today - dt.timedelta(days=13) <= day <= today:
            per_day[day.isoformat()] += 1
    assert len(body["rows"]) == 14 and body["rows"][-1]["day"] == TODAY
    assert {r["day"]: r["orders"] for r in body["rows"] if r["orders"]} == dict(per_day)

    # and the birthdays of a period as XML, by customer id only, erased customers left out
    registered, erased = {}, set()
    for e in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        if e.type == "customer_registered":
            registered[e.customer_id] = e.payload.get("birth_date")
        elif e.type == "customer_erasure_requested":
            erased.add(e.customer_id)
    start, end = dt.date(2025, 3, 1), dt.date(2025, 6, 30)

    def in_period(birth: str | None) -> bool:
        if not birth:
            return False
        month_day = birth[5:]
        return start.strftime("%m-%d") <= ("03-01" if month_day == "02-29" else month_day) <= end.strftime("%m-%d")

    want_birthdays = {cid for cid, birth in registered.items() if cid not in erased and in_period(birth)}
    assert want_birthdays, "the simulated customers have birthdays in four months"
    raw = report(settings, tmp_path, "birthdays", "xml", "--from", str(start), "--to", str(end))
    root = ET.fromstring(raw)
    assert root.tag == "report" and root.get("name") == "birthdays"
    got_rows = [{child.tag: child.text for child in row} for row in root]
    assert {r["customer_id"] for r in got_rows} == want_birthdays
    for r in got_rows:
        birth = dt.date.fromisoformat(registered[r["customer_id"]])
        leap_day = (birth.month, birth.day) == (2, 29)  # 2025 is a common year: kept on 1 March
        assert (int(r["day"]), int(r["month"])) == ((1, 3) if leap_day else (birth.day, birth.month))
        assert int(r["turns"]) == 2025 - birth.year
        assert set(r) == {"customer_id", "day", "month", "turns"}, "day, month and age only: no birth date"
        assert birth.isoformat().encode() not in raw

    # and the replenishment reminders: the latest delivery of each consumable, plus its interval
    import tomllib

    interval = tomllib.loads((REPO / "alerts" / "replenishment.toml").read_text())["products"]
    latest = {}
    for oid, o in orders.items():
        if "delivered" not in o["reached"] or "returned" in o["reached"]:
            continue
        delivered = min(e.occurred_at for e in events if e.order_id == oid and e.type == "order_delivered"
                        and e.event_id not in o["flagged"])
        for item in placed[oid].payload["items"]:
            key = (o["customer_id"], item["product_id"])
            if item["product_id"] in interval and latest.get(key, (0,)) < (delivered, oid):
                latest[key] = (delivered, oid)
    want_due = {(cid, pid, (dt.datetime.fromtimestamp(at / 1000, TZ).date() + dt.timedelta(days=interval[pid])).isoformat(),
                 oid) for (cid, pid), (at, oid) in latest.items()}
    assert want_due, "a simulated customer had a consumable delivered"
    rows = list(csv.DictReader(io.StringIO(report(settings, tmp_path, "replenishment", "csv", "--from", "2025-03-01",
                                                  "--to", "2025-12-31").decode())))
    assert {(r["customer_id"], r["product_id"], r["due_on"], r["order_id"]) for r in rows} == want_due

    # and NPS per month: % promoters (9-10) minus % detractors (0-6) of the answers
    by_month = defaultdict(list)
    for e in {e.event_id: e for e in events if e.type == "nps_answered"}.values():
        by_month[dt.datetime.fromtimestamp(e.occurred_at / 1000, TZ).strftime("%Y-%m")].append(e.payload["score"])
    rows = list(csv.DictReader(io.StringIO(report(settings, tmp_path, "nps", "csv").decode())))
    assert {r["month"]: (int(r["answers"]), float(r["nps"])) for r in rows} == {
        m: (len(s), round(100 * (sum(x >= 9 for x in s) - sum(x <= 6 for x in s)) / len(s), 1)) for m, s in by_month.items()}

    # and support tickets: response and resolution times per channel and category
    first = {}
    for e in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        if e.type in ("ticket_opened", "ticket_answered", "ticket_resolved"):
            first.setdefault((e.type, e.payload["ticket_number"]), e)
    tickets = defaultdict(lambda: {"tickets": 0, "answered": 0, "resolved": 0, "response_h": []})
    for (kind, number), e in first.items():
        if kind != "ticket_opened":
            continue
        t = tickets[(e.payload["channel"], e.payload["category"])]
        t["tickets"] += 1
        if ("ticket_answered", number) in first:
            t["answered"] += 1
            t["response_h"].append((first[("ticket_answered", number)].occurred_at - e.occurred_at) / 3_600_000)
        t["resolved"] += ("ticket_resolved", number) in first
    assert tickets, "the simulator opens support tickets"
    body = json.loads(report(settings, tmp_path, "support", "json"))
    got = {(r["channel"], r["category"]): r for r in body["rows"]}
    assert set(got) == set(tickets)
    for key, t in tickets.items():
        r = got[key]
        assert (r["tickets"], r["answered"], r["resolved"]) == (t["tickets"], t["answered"], t["resolved"]), key
        if t["response_h"]:
            assert abs(r["average_first_response_hours"] - sum(t["response_h"]) / len(t["response_h"])) < 0.01, key


def test_live_reports_from_the_projection_topics_equal_the_replay(settings, worker_factory, tmp_path):
    # Given traffic folded by a worker, which keeps projections.orders and projections.visits current
    events = list(generate(12, 800, START_MS, impossible_fraction=0.1))
    publish(settings, events)
    worker_factory(settings)
    # When each order- and session-based report is read from those compacted topics (--live)
    for name in ("orders-by-uf", "payment-methods", "handling-time", "late-deliveries", "orders-by-access", "accesses"):
        replayed = report(settings, tmp_path, name, "json")
        # Then it equals the report folded from the log, once the worker has caught up
        wait_until(lambda n=name, r=replayed: report(settings, tmp_path, n, "json", "--live") == r, timeout=120,
                   what=f"the live {name} report to equal the replayed one")
    # and the live figures are the events' own, not only the replay's
    live = json.loads(report(settings, tmp_path, "orders-by-uf", "json", "--live"))["rows"]
    assert {r["uf"]: [r["orders"], r["revenue_brl"], r["shipped"], r["cancelled"]] for r in live} == expected_by_uf(events)


def test_a_report_on_a_namespace_without_topics_says_what_to_do(settings_factory, tmp_path):
    empty = settings_factory()  # a fresh prefix: its topics were never created
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "report", "nps", "-q"], env=settings_env(empty),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{empty.topic_prefix}customers.events" in done.stderr and "posvenda topics create" in done.stderr
