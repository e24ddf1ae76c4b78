"""Writes a report Table as CSV, XLSX (openpyxl), XML or JSON: what an operations team opens in a
spreadsheet or hands to an ERP. The format follows the file name's suffix unless given.

Report cells carry text that came from events (a UF, a carrier, a ticket category, a customer id),
so every writer treats it as hostile:
- a number that is not finite (NaN, +-Infinity) is written as no value (an empty cell, an empty XML
  element, JSON null): it never reaches a file, and JSON stays strict;
- control characters (C0, DEL, C1) and code points XML cannot carry (lone surrogates, U+FFFE/U+FFFF)
  are escaped as a visible `\\xNN` / `\\uNNNN`, except tab, CR and LF, which become a space: the
  XLSX writer never meets a character it refuses, and the XML is always well-formed;
- in the two formats a spreadsheet opens (CSV, XLSX), text starting with `=`, `+`, `-`, `@`, tab or
  CR (also after leading whitespace, which some importers trim) gets a leading `'` (OWASP's rule
  against formula injection), and XLSX stores every text cell as a string, never a formula or an
  error value. Numbers stay numbers (a negative amount is a number).
  XML and JSON keep the text as it is: their readers do not evaluate it.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from projections.reports import Table

FORMATS = ("csv", "xlsx", "xml", "json")

_SPACES = re.compile(r"[\t\r\n]")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
FORMULA_STARTS = ("=", "+", "-", "@")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean_text(text: str) -> str:
    """Text any format can carry: tab/CR/LF as a space, every other control character escaped."""
    return _UNSAFE.sub(_escape, _SPACES.sub(" ", text))


def clean(value):
    """A cell value fit for every format: None, a finite number, a bool or clean text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return clean_text(str(value))


def spreadsheet_cell(value):
    """`clean(value)`, with a leading `'` when a spreadsheet could read the text as a formula."""
    cell = clean(value)
    if not isinstance(cell, str):
        return cell
    text = str(value)
    return "'" + cell if text.startswith(("\t", "\r")) or text.lstrip().startswith(FORMULA_STARTS) else cell


def _spreadsheet_rows(table: Table) -> list[list]:
    return [[spreadsheet_cell(v) for v in row] for row in [table.columns, *table.rows]]


def to_csv(table: Table) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerows(["" if v is None else v for v in row] for row in _spreadsheet_rows(table))
    return out.getvalue().encode("utf-8")


def to_xml(table: Table) -> bytes:
    """<report name=".." title=".."><row><uf>SP</uf>...</row></report>; a None value is an empty element."""
    root = ET.Element("report", name=clean_text(table.name), title=clean_text(table.title))
    for row in table.rows:
        element = ET.SubElement(root, "row")
        for column, value in zip(table.columns, row, strict=True):
            value = clean(value)
            ET.SubElement(element, column).text = None if value is None else str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def to_xlsx(table: Table) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = table.name[:31]  # Excel's limit for a sheet name
    for r, row in enumerate(_spreadsheet_rows(table), 1):
        for c, value in enumerate(row, 1):
            cell = sheet.cell(r, c, value)
            if isinstance(value, str):
                cell.data_type = "s"  # openpyxl would make "=..." a formula and "#N/A" an error value
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_json(table: Table) -> bytes:
    rows = [{clean_text(k): clean(v) for k, v in row.items()} for row in table.as_dicts()]
    body = {"report": clean_text(table.name), "title": clean_text(table.title),
            "columns": [clean_text(c) for c in table.columns], "rows": rows}
    return (json.dumps(body, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8")


WRITERS = {"csv": to_csv, "xlsx": to_xlsx, "xml": to_xml, "json": to_json}


def format_for(path: Path | None, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lstrip(".").lower() if path else ""
    return suffix if suffix in FORMATS else "csv"


def render(table: Table, fmt: str) -> bytes:
    try:
        return WRITERS[fmt](table)
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})") from None
