"""Writes a report Table as CSV, XLSX (openpyxl), XML or JSON: what an operations team opens in a
spreadsheet or hands to an ERP. The format follows the file name's suffix unless given."""
from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from projections.reports import Table

FORMATS = ("csv", "xlsx", "xml", "json")


def to_csv(table: Table) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return out.getvalue().encode("utf-8")


def to_xml(table: Table) -> bytes:
    """<report name=".." title=".."><row><uf>SP</uf>...</row></report>; a None value is an empty element."""
    root = ET.Element("report", name=table.name, title=table.title)
    for row in table.rows:
        element = ET.SubElement(root, "row")
        for column, value in zip(table.columns, row, strict=True):
            ET.SubElement(element, column).text = None if value is None else str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def to_xlsx(table: Table) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = table.name[:31]  # Excel's limit for a sheet name
    sheet.append(list(table.columns))
    for row in table.rows:
        sheet.append(list(row))
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_json(table: Table) -> bytes:
    body = {"report": table.name, "title": table.title, "columns": list(table.columns), "rows": table.as_dicts()}
    return (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


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
