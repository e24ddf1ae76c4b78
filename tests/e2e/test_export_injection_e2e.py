"""Formula injection end to end: events whose free-text fields are spreadsheet formulas go through
`posvenda ingest` into the real broker, `posvenda report` exports them in every format (from the log,
and from the worker's projection topics with --live), and each file is opened with its own reader:
in CSV and XLSX every such value is inert text with a leading `'` (XLSX: a string cell, never a
formula), in XML and JSON it is the text as ingested; the figures beside it stay numbers."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET

from openpyxl import load_workbook

from tests.conftest import REPO, settings_env, wait_until

UF = '=HYPERLINK("http://x","y")'
METHOD = "+cmd"
CARRIER = "-2+3"
CHANNEL = "=cmd|' /C calc'!A0"
TICKET_CHANNEL = "@SUM(1)"
CATEGORY = "=1+1"
CUSTOMER = "@SUM(A1:A9)"
DAY = "2025-03-10"


def event(type_: str, at: str, payload: dict, **ids) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": type_, "occurred_at": f"{DAY[:8]}{at}", "source": "web",
            **ids, "payload": payload}


def hostile_events() -> list[dict]:
    """One order with formulas in every free-text field a report shows, delivered late, and one plain order."""
    ids = {"order_id": "o-inj-1", "customer_id": CUSTOMER, "session_id": "s-inj-1"}
    item = {"product_id": "p-0040", "quantity": 1, "unit_price": 90.0}  # a consumable: a replenishment reminder
    return [
        event("session_started", "10T10:00:00Z", {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                                                  "channel": CHANNEL, "landing_page": "/"}, session_id="s-inj-1"),
        event("order_placed", "10T10:05:00Z", {"items": [item], "total": 100.0, "freight": 10.0, "payment_method": METHOD,
                                               "uf": UF, "city": "-Campinas", "carrier": CARRIER,
                                               "promised_delivery_at": "2025-03-12T00:00:00Z"}, **ids),
        event("order_paid", "10T11:00:00Z", {"method": METHOD, "amount": 100.0}, **ids),
        event("order_shipped", "11T10:00:00Z", {"carrier": CARRIER, "tracking_code": "=T1"}, **ids),
        event("order_delivered", "14T10:00:00Z", {}, **ids),
        event("ticket_opened", "15T10:00:00Z", {"ticket_number": "t-1", "channel": TICKET_CHANNEL, "category": CATEGORY,
                                                "confirmation_sent": True}, order_id="o-inj-1", customer_id=CUSTOMER),
        event("order_placed", "10T12:00:00Z", {"items": [{"product_id": "p-0002", "quantity": 1, "unit_price": 50.0}],
                                               "total": 50.0, "freight": 0.0, "payment_method": "pix", "uf": "SP",
                                               "city": "Santos", "promised_delivery_at": "2025-03-20T00:00:00Z"},
              order_id="o-ok-1", customer_id="c-ok"),
    ]


# report -> (columns holding ingested formulas, with their values), (figures of that row), extra arguments
EXPECTED = {
    "orders-by-uf": ({"uf": UF}, {"orders": 1, "revenue_brl": 100.0, "shipped": 1}, ()),
    "payment-methods": ({"method": METHOD}, {"orders": 1, "paid": 1, "paid_revenue_brl": 100.0}, ()),
    "late-deliveries": ({"carrier": CARRIER, "uf": UF}, {"deliveries": 1, "late": 1}, ()),
    "orders-by-access": ({"channel": CHANNEL}, {"orders": 1, "revenue_brl": 100.0}, ()),
    "support": ({"channel": TICKET_CHANNEL, "category": CATEGORY}, {"tickets": 1, "answered": 0}, ()),
    "replenishment": ({"customer_id": CUSTOMER}, {}, ("--from", "2025-01-01", "--to", "2025-12-31")),
}
ORDER_REPORTS = ("orders-by-uf", "payment-methods", "late-deliveries", "orders-by-access")


def run_cli(settings, *args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"posvenda {' '.join(args)}: {done.stderr[-3000:]}"
    return done


def export(settings, tmp_path, name: str, fmt: str, *extra) -> bytes:
    out = tmp_path / f"{name}-{fmt}-{uuid.uuid4().hex[:6]}.{fmt}"
    run_cli(settings, "report", name, "-q", "--today", "2025-03-20", "--out", str(out), *EXPECTED[name][2], *extra)
    return out.read_bytes()


def no_constants(name):
    raise AssertionError(f"not strict JSON: {name}")


def read_rows(fmt: str, data: bytes) -> list[dict]:
    """The rows as {column: value} through the format's own reader; XLSX values keep their cell type."""
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    if fmt == "xml":
        return [{child.tag: child.text for child in row} for row in ET.fromstring(data)]
    if fmt == "json":
        return json.loads(data, parse_constant=no_constants)["rows"]
    header, *body = list(load_workbook(io.BytesIO(data)).active.iter_rows())
    formulas = [c.coordinate for row in (header, *body) for c in row if c.data_type in ("f", "e")]
    assert not formulas, f"formula or error cells in the XLSX: {formulas}"
    return [{h.value: cell for h, cell in zip(header, row, strict=True)} for row in body]


def check_export(fmt: str, name: str, data: bytes) -> None:
    texts, figures, _ = EXPECTED[name]
    spreadsheet = fmt in ("csv", "xlsx")
    want = {column: ("'" + value if spreadsheet else value) for column, value in texts.items()}
    rows = read_rows(fmt, data)
    shown = [{k: (v.value if fmt == "xlsx" else v) for k, v in row.items()} for row in rows]
    hits = [n for n, row in enumerate(shown) if all(row[c] == v for c, v in want.items())]
    assert len(hits) == 1, f"{name}.{fmt}: one row with {want} expected, got {shown}"
    row = rows[hits[0]]
    for column, value in figures.items():
        cell = row[column]
        if fmt == "xlsx":
            assert cell.data_type == "n" and cell.value == value, (name, column, cell.value)
        else:
            assert float(cell) == value, (name, fmt, column, cell)
    if fmt == "xlsx":
        assert all(row[c].data_type == "s" for c in texts), f"{name}: formula text not stored as a string"
    for other in shown[:hits[0]] + shown[hits[0] + 1:]:  # a plain value is written as it is
        assert not any(isinstance(v, str) and v.startswith("'") for v in other.values()), (name, fmt, other)


def test_ingested_formulas_are_inert_in_every_export(settings, worker_factory, tmp_path):
    # Given events whose UF, payment method, carrier, session channel, ticket channel and category and
    # customer id are spreadsheet formulas, ingested with the command line
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in hostile_events()), encoding="utf-8")
    assert "7 published, 0 rejected" in run_cli(settings, "ingest", str(path), "-q").stdout

    # When each report showing them is exported in every format from the log
    # Then each file opens with its reader, the formulas inert in CSV/XLSX, verbatim in XML/JSON
    for name in EXPECTED:
        for fmt in ("csv", "xlsx", "xml", "json"):
            check_export(fmt, name, export(settings, tmp_path, name, fmt))

    # and the same holds when a worker has folded them and the reports read its projection topics (--live)
    worker_factory(settings)
    for name in ORDER_REPORTS:
        wait_until(lambda n=name: check_export("json", n, export(settings, tmp_path, n, "json", "--live")) or True,
                   timeout=120, interval=1, what=f"the live {name} report to show the ingested order")
        for fmt in ("csv", "xlsx", "xml"):
            check_export(fmt, name, export(settings, tmp_path, name, fmt, "--live"))
