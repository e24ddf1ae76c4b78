"""Report exports against hostile cell values: formula injection (CWE-1236), control characters and
non-finite numbers, each file opened with its own reader (csv, openpyxl, ElementTree, strict json)."""
import csv
import io
import json
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from projections import report_export, reports

COLUMNS = ("uf", "carrier", "customer_id", "note", "amount", "count")
HOSTILE = reports.Table("hostile", "Hostile values", COLUMNS, [
    ('=HYPERLINK("http://x")', "+cmd", "@SUM(1)", "a\x01b\x1bc", float("nan"), -5),
    ("-2+3", "\tcmd", "\r=1", "line\nbreak\r", float("inf"), -12.5),
    ("SP", "  =1+1", "c-1", "#N/A", float("-inf"), 3),
    ("RJ", "del\x7f", "nul\x00", "lone\ud800 and \ufffe", None, 0.0),
])
# What a spreadsheet must show: formula starts neutralised with a leading ', controls escaped or spaced.
SPREADSHEET_TEXT = [
    ["'=HYPERLINK(\"http://x\")", "'+cmd", "'@SUM(1)", "a\\x01b\\x1bc"],
    ["'-2+3", "' cmd", "' =1", "line break "],
    ["SP", "'  =1+1", "c-1", "#N/A"],
    ["RJ", "del\\x7f", "nul\\x00", "lone\\ud800 and \\ufffe"],
]
NUMBERS = [(None, -5), (None, -12.5), (None, 3), (None, 0.0)]  # NaN and +-Infinity become no value
# XML and JSON readers evaluate nothing: the text stays as given, only control characters change.
DATA_TEXT = [
    ['=HYPERLINK("http://x")', "+cmd", "@SUM(1)", "a\\x01b\\x1bc"],
    ["-2+3", " cmd", " =1", "line break "],
    ["SP", "  =1+1", "c-1", "#N/A"],
    ["RJ", "del\\x7f", "nul\\x00", "lone\\ud800 and \\ufffe"],
]


def no_constants(name):
    raise AssertionError(f"not strict JSON: {name}")


def test_csv_neutralises_formulas_and_keeps_numbers_as_numbers():
    # Given hostile text, control characters and non-finite amounts / When exported as CSV
    rows = list(csv.reader(io.StringIO(report_export.render(HOSTILE, "csv").decode("utf-8"), newline="")))
    # Then each row reads back as one record, formulas inert, numbers as written, non-finite empty
    assert rows[0] == list(COLUMNS)
    assert len(rows) == 1 + len(HOSTILE.rows)
    for got, text, (amount, count) in zip(rows[1:], SPREADSHEET_TEXT, NUMBERS, strict=True):
        assert got == text + ["" if amount is None else str(amount), str(count)]


def test_xlsx_stores_hostile_text_as_strings_and_numbers_as_numbers():
    # When exported as XLSX and opened with openpyxl
    sheet = load_workbook(io.BytesIO(report_export.render(HOSTILE, "xlsx"))).active
    header, *body = list(sheet.iter_rows())
    assert [c.value for c in header] == list(COLUMNS)
    # Then every text cell is a string (never a formula 'f' or an error value 'e'), numbers stay numeric
    for cells, text, (amount, count) in zip(body, SPREADSHEET_TEXT, NUMBERS, strict=True):
        assert [c.value for c in cells[:4]] == text
        assert [c.data_type for c in cells[:4]] == ["s"] * 4
        assert cells[4].value is amount and cells[5].value == count and cells[5].data_type == "n"
    assert not [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type in ("f", "e")]


def test_xml_is_well_formed_and_keeps_the_text():
    root = ET.fromstring(report_export.render(HOSTILE, "xml"))
    got = [[row.find(c).text for c in COLUMNS] for row in root]
    assert got == [text + [None, str(count)] for text, (_, count) in zip(DATA_TEXT, NUMBERS, strict=True)]


def test_json_is_strict_with_null_for_non_finite_numbers():
    body = json.loads(report_export.render(HOSTILE, "json"), parse_constant=no_constants)
    assert [[r[c] for c in COLUMNS] for r in body["rows"]] == [
        text + [None, count] for text, (_, count) in zip(DATA_TEXT, NUMBERS, strict=True)]


def test_a_report_with_a_nan_amount_and_a_formula_uf_exports_safely():
    # Given an order whose UF is a formula and whose total is NaN, beside a normal one
    def order(oid, uf, total):
        return {"order_id": oid, "placed_at": 1_741_611_600_000, "total": total, "status": "placed",
                "reached": ["placed"], "payment_method": "pix", "uf": uf, "session_id": None, "timeline": []}

    import datetime as dt

    inputs = reports.Inputs([order("a", "=1+1", float("nan")), order("b", "SP", -10.0)], [], [],
                            "America/Sao_Paulo", dt.date(2025, 3, 20))
    table = reports.orders_by_uf(inputs)
    # When it is exported in every format / Then the formula is inert and the NaN is no value
    sheet = load_workbook(io.BytesIO(report_export.render(table, "xlsx"))).active
    cells = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    assert set(cells) == {"'=1+1", "SP"} and cells["'=1+1"][0].data_type == "s"
    assert cells["'=1+1"][2].value is None and cells["SP"][2].value == -10.0 and cells["SP"][2].data_type == "n"
    rows = json.loads(report_export.render(table, "json"), parse_constant=no_constants)["rows"]
    assert {r["uf"]: r["revenue_brl"] for r in rows} == {"=1+1": None, "SP": -10.0}


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=()) | st.sampled_from("=+-@\t\r\n\x00\x1b\x7f"),
               max_size=12)
VALUE = TEXT | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.none()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(VALUE, VALUE), min_size=1, max_size=4))
def test_any_value_gives_files_their_readers_accept(rows):
    # Given any text (control characters, surrogates, formula starts), any float or int
    table = reports.Table("any", "Any", ("a", "b"), rows)
    # Then the XML parses, the JSON is strict, and no spreadsheet cell is a formula or starts like one
    assert len(ET.fromstring(report_export.render(table, "xml"))) == len(rows)
    assert len(json.loads(report_export.render(table, "json"), parse_constant=no_constants)["rows"]) == len(rows)
    sheet = load_workbook(io.BytesIO(report_export.render(table, "xlsx"))).active
    for cell in (c for row in sheet.iter_rows(min_row=2) for c in row):
        assert cell.data_type not in ("f", "e"), cell.value
        assert not (isinstance(cell.value, str) and cell.value.lstrip().startswith(("=", "+", "-", "@")))
    lines = list(csv.reader(io.StringIO(report_export.render(table, "csv").decode("utf-8"), newline="")))
    assert len(lines) == 1 + len(rows)
    for text in (v for line in lines for v in line):
        assert not text.lstrip().startswith(("=", "+", "-", "@")) or _is_number(text), text
        assert not any(ord(ch) < 0x20 for ch in text), text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
