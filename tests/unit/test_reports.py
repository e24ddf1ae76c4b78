"""The reports' pure functions on hand-written read-model records, and the export formats."""
import csv
import datetime as dt
import io
import json
import uuid
import xml.etree.ElementTree as ET

import pytest
from openpyxl import load_workbook

from projections import report_export, reports
from topics.events import Event

TZ = "America/Sao_Paulo"
H = 3_600_000
MON_10H = 1_741_611_600_000  # 2025-03-10 10:00 in São Paulo (a Monday)


def order(oid, total, status, reached, method="boleto", uf="SP", session=None, shipped_after_h=None, flagged=False):
    timeline = [{"type": "order_placed", "kind": "transition", "at": MON_10H, "flagged": False}]
    if shipped_after_h is not None:
        timeline.append({"type": "order_shipped", "kind": "transition", "at": MON_10H + shipped_after_h * H,
                         "flagged": flagged})
    return {"order_id": oid, "placed_at": MON_10H, "total": total, "status": status, "reached": reached,
            "payment_method": method, "uf": uf, "session_id": session, "timeline": timeline}


def registered(cid, birth, sex="F", at=MON_10H):
    return Event(str(uuid.uuid4()), "customer_registered", at, "web", None, cid, None,
                 {"name": "x", "email": "x@y", "birth_date": birth, "sex": sex, "uf": "SP", "city": "c", "consents": []})


def inputs(orders=(), sessions=(), events=(), today=dt.date(2025, 3, 20)):
    return reports.Inputs(list(orders), list(sessions), list(events), TZ, today)


ORDERS = [
    order("a", 100.0, "delivered", ["delivered", "paid", "placed", "shipped"], shipped_after_h=10, session="s1"),
    order("b", 300.0, "cancelled", ["cancelled", "payment_pending", "placed"], uf="RJ"),
    order("c", 50.0, "paid", ["paid", "placed"], method="pix", shipped_after_h=5, flagged=True),
]


def test_orders_by_uf_and_value_by_outcome():
    table = reports.orders_by_uf(inputs(ORDERS))
    assert table.as_dicts()[0] == {"uf": "SP", "orders": 2, "revenue_brl": 150.0, "average_ticket_brl": 75.0,
                                   "shipped": 1, "cancelled": 0}
    outcome = {r["outcome"]: r for r in reports.order_value_by_outcome(inputs(ORDERS)).as_dicts()}
    assert outcome["shipped"]["average_value_brl"] == 100.0 and outcome["cancelled"]["average_value_brl"] == 300.0


def test_handling_time_ignores_a_flagged_shipment():
    rows = reports.handling_time(inputs(ORDERS)).as_dicts()
    assert rows == [{"method": "boleto", "orders_shipped": 1, "average_hours": 10.0, "median_hours": 10.0}]


def test_orders_by_access_joins_the_session():
    sessions = [{"session_id": "s1", "device": "mobile", "channel": "organic", "visits": []}]
    rows = {(r["device"], r["channel"]): r["orders"] for r in reports.orders_by_access(inputs(ORDERS, sessions)).as_dicts()}
    assert rows == {("mobile", "organic"): 1, ("unknown", "unknown"): 2}


def test_accesses_by_local_weekday_and_hour():
    sessions = [{"session_id": "s1", "visits": [{"started_at": MON_10H}, {"started_at": MON_10H + 24 * H}]}]
    assert reports.accesses(inputs(sessions=sessions)).rows == [("monday", 10, 1), ("tuesday", 10, 1)]


def test_age_bands_and_erasure():
    erased = Event(str(uuid.uuid4()), "customer_erasure_requested", MON_10H + H, "crm", None, "c3", None, {"reason": "x"})
    evs = [registered("c1", "2000-03-21"), registered("c2", "1980-01-01", "M"), registered("c3", "1990-01-01"), erased]
    rows = reports.customers_by_age_sex(inputs(events=evs)).rows
    assert rows == [("18-24", "F", 1), ("45-54", "M", 1)]  # c1 is 24 until 21 March 2025; c3 erased


def test_birthdays_across_a_year_end_and_on_29_february():
    evs = [registered("c1", "1996-02-29"), registered("c2", "1990-12-31"), registered("c3", "1990-06-15")]
    table = reports.birthdays(inputs(events=evs), dt.date(2024, 12, 1), dt.date(2025, 3, 5))
    assert table.columns == ("customer_id", "day", "month", "turns"), "day and month, never the birth date"
    assert table.rows == [("c2", 31, 12, 34), ("c1", 1, 3, 29)]
    with pytest.raises(ValueError, match="ends"):
        reports.birthdays(inputs(), dt.date(2025, 3, 5), dt.date(2025, 3, 1))


def test_last_days_lists_every_day_of_the_period():
    table = reports.daily_ticket(inputs(ORDERS), days=14)
    assert len(table.rows) == 14 and table.rows[0][0] == "2025-03-07" and table.rows[3] == ("2025-03-10", 3, 450.0, 150.0)


def test_every_export_reads_back():
    table = reports.Table("t", "T", ("a", "b"), [("SP", 1.5), ("RJ", None)])
    assert list(csv.reader(io.StringIO(report_export.render(table, "csv").decode()))) == [["a", "b"], ["SP", "1.5"], ["RJ", ""]]
    root = ET.fromstring(report_export.render(table, "xml"))
    assert [(r.find("a").text, r.find("b").text) for r in root] == [("SP", "1.5"), ("RJ", None)]
    sheet = load_workbook(io.BytesIO(report_export.render(table, "xlsx"))).active
    assert list(sheet.iter_rows(values_only=True)) == [("a", "b"), ("SP", 1.5), ("RJ", None)]
    assert json.loads(report_export.render(table, "json"))["rows"][1] == {"a": "RJ", "b": None}
    assert report_export.format_for(None, None) == "csv"
    with pytest.raises(ValueError, match="unknown report format"):
        report_export.render(table, "pdf")


def ev(type_, at, payload, customer="c1"):
    return Event(str(uuid.uuid4()), type_, at, "crm", None, customer, None, payload)


def test_nps_by_month():
    evs = [ev("nps_answered", MON_10H, {"score": s}) for s in (10, 9, 8, 3)] + [ev("nps_answered", MON_10H + 30 * 24 * H,
                                                                              {"score": 0})]
    want = [("2025-03", 4, 2, 1, 1, 25.0), ("2025-04", 1, 0, 0, 1, -100.0)]
    assert reports.nps(inputs(events=evs)).rows == want
    assert reports.nps(inputs(events=evs + evs[:2] + evs[4:])).rows == want, "a re-sent answer counts once"


def test_support_times_and_repeated_problems():
    def ticket(number, at, category="delivery", customer="c1", answer_h=None, resolve_h=None):
        out = [ev("ticket_opened", at, {"ticket_number": number, "channel": "whatsapp", "category": category,
                                        "confirmation_sent": True}, customer)]
        if answer_h is not None:
            out.append(ev("ticket_answered", at + answer_h * H, {"ticket_number": number, "channel": "whatsapp"}, customer))
        if resolve_h is not None:
            out.append(ev("ticket_resolved", at + resolve_h * H, {"ticket_number": number}, customer))
        return out

    evs = ticket("t1", MON_10H, answer_h=2, resolve_h=10) + ticket("t2", MON_10H + 48 * H, answer_h=4) \
        + ticket("t3", MON_10H, category="payment", customer="c2")
    evs.append(evs[0])  # a re-sent ticket_opened changes nothing
    rows = {r["category"]: r for r in reports.support(inputs(events=evs)).as_dicts()}
    assert rows["delivery"] == {"channel": "whatsapp", "category": "delivery", "tickets": 2, "answered": 2,
                                "average_first_response_hours": 3.0, "resolved": 1, "average_resolution_hours": 10.0,
                                "repeated_problem": 1}
    assert rows["payment"]["answered"] == 0 and rows["payment"]["average_first_response_hours"] is None


def test_late_deliveries_split_dispatch_and_transit():
    def delivered(oid, shipped_h, delivered_h, promised_h, carrier="jadlog"):
        o = order(oid, 10.0, "delivered", ["delivered"], shipped_after_h=shipped_h)
        o["timeline"].append({"type": "order_delivered", "kind": "transition", "at": MON_10H + delivered_h * H,
                              "flagged": False})
        return {**o, "carrier": carrier, "promised_delivery_at": MON_10H + promised_h * H}

    rows = reports.late_deliveries(inputs([delivered("a", 10, 50, 40), delivered("b", 30, 60, 72)])).as_dicts()
    assert rows == [{"carrier": "jadlog", "uf": "SP", "deliveries": 2, "late": 1, "late_rate": 0.5,
                     "average_dispatch_hours": 20.0, "average_transit_hours": 35.0}]


def test_replenishment_from_the_latest_delivery_of_each_product():
    def bought(oid, customer, product, delivered_day, returned=False):
        at = int(dt.datetime.fromisoformat(f"{delivered_day}T12:00:00-03:00").timestamp() * 1000)
        o = order(oid, 10.0, "returned" if returned else "delivered",
                  ["delivered", "placed"] + (["returned"] if returned else []))
        o["timeline"].append({"type": "order_delivered", "kind": "transition", "at": at, "flagged": False})
        return {**o, "customer_id": customer, "products": [{"product_id": product, "quantity": 1}]}

    orders = [bought("a", "c1", "sun", "2025-03-01"), bought("b", "c1", "sun", "2025-03-10"),  # the later one counts
              bought("c", "c2", "sun", "2025-03-05", returned=True),  # returned: no reminder
              bought("d", "c3", "tv", "2025-03-01"),  # not a consumable
              bought("e", "c4", "perfume", "2025-01-01")]
    table = reports.replenishment(inputs(orders), dt.date(2025, 4, 1), dt.date(2025, 5, 31), {"sun": 30, "perfume": 120})
    assert table.rows == [("2025-04-09", "c1", "sun", "2025-03-10", "b"), ("2025-05-01", "c4", "perfume", "2025-01-01", "e")]


def test_replenishment_config_is_checked(tmp_path):
    assert reports.replenishment_days()["p-0040"] == 30  # the shipped config loads
    bad = tmp_path / "r.toml"
    bad.write_text('[products]\n"p-1" = 0\n')
    with pytest.raises(ValueError, match="p-1: the interval must be a whole number of days > 0"):
        reports.replenishment_days(bad)


def every_report(log: list) -> dict[str, list]:
    """Every report's rows from a replayed log, folded as `posvenda report` folds it."""
    from projections import order_history_fold, rebuild, visits_fold

    given = reports.Inputs([order_history_fold.view(s) for _, s in sorted(rebuild.fold_orders(log).items())],
                           [visits_fold.view(s) for _, s in sorted(rebuild.fold_sessions(log).items())],
                           reports.side_events(r.event for r in log), TZ, dt.date(2025, 3, 31))
    period = (dt.date(2025, 3, 1), dt.date(2025, 12, 31))
    tables = {name: report(given, *period) if name in ("birthdays", "replenishment") else report(given)
              for name, report in reports.REPORTS.items()}
    return {name: table.rows for name, table in tables.items()}


def test_a_log_with_every_event_twice_gives_the_same_reports():
    from posvenda.simulate import generate
    from projections.rebuild import Replayed
    from topics import catalogue, events

    # Given simulated traffic (customers, orders, NPS answers, tickets) as a replayed log
    generated = list(generate(5, 600, MON_10H, impossible_fraction=0.05))
    log = [Replayed(catalogue.for_event_family(events.event_type(e.type).family), 0, n, e)
           for n, e in enumerate(generated)]
    once = every_report(log)
    assert all(once[name] for name in ("nps", "support", "birthdays", "orders-by-uf", "accesses")), \
        "the traffic feeds the reports compared"
    # When every event is in the log twice (a file ingested again, a producer's retry)
    twice = every_report(log + [Replayed(r.topic, 1, n, r.event) for n, r in enumerate(log)])
    # Then every report is the same
    assert twice == once
