"""The report as files: a self-contained HTML page (also the mail body) and an XLSX workbook.

HTML: Jinja template ``include/templates/report/daily_report.html.j2`` with
inline CSS and table layout (mail clients drop ``<style>`` and ignore modern
layout); charts are ``data:`` URIs in the saved file (opens anywhere,
offline) and ``cid:`` references in the mail (mail clients block ``data:``
images). Every value is escaped by Jinja's autoescape.

XLSX: one sheet per table with the Chinese headers and number formats (CNY,
percentages, dates). Text that a spreadsheet would take for a formula (it
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
neutralised with a leading apostrophe and stored as text.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2

from bridge import settings
from bridge.report.model import Chart, Column, Marts, Table
from bridge.report.periods import Periods
from bridge.templating import template_environment

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
TEMPLATE = "daily_report.html.j2"
XLSX_FORMATS = {
    "int": "#,##0", "cny": '"¥"#,##0.00', "pct": "+0.0%;-0.0%;0.0%", "share": "0.0%", "hours": "0.0", "minutes": "0.0", "days": "0.0",
    "score": "0.0", "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm",
}
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def neutralise(value: Any) -> Any:
    """Text a spreadsheet would evaluate as a formula, made inert (prefixed with an apostrophe)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def fmt(value: Any, kind: str) -> str:
    """A value as the HTML shows it."""
    if _missing(value) or (hasattr(value, "__class__") and value.__class__.__name__ == "NaTType"):
        return "—"
    if kind == "cny":
        return f"¥{float(value):,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{float(value) * 100:+.1f}%"
    if kind == "share":
        return f"{float(value) * 100:.1f}%"
    if kind in ("hours", "minutes", "days", "score"):
        return f"{float(value):,.1f}"
    if kind == "date":
        return value.strftime("%Y-%m-%d") if isinstance(value, date) else str(value)
    if kind == "datetime":
        return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)
    return str(value)


def _tone(value: Any, kind: str) -> str:
    if kind != "pct" or _missing(value):
        return ""
    return "up" if float(value) > 0 else "down" if float(value) < 0 else ""


def _environment() -> jinja2.Environment:
    folder = settings.include_dir() / "templates" / "report"
    env = template_environment(folder)
    env.filters["fmt"] = fmt
    env.filters["tone"] = _tone
    return env


def image_sources(charts: Mapping[str, Chart], *, mail: bool) -> dict[str, str]:
    """``cid:`` references for the mail, ``data:`` URIs for the saved page."""
    if mail:
        return {k: f"cid:{content_id(k)}" for k in charts}
    return {k: "data:image/png;base64," + base64.b64encode(c.png).decode("ascii") for k, c in charts.items()}


def content_id(chart_key: str) -> str:
    return f"{chart_key}@daily-report.bridge"


def render_html(marts: Marts, charts: Mapping[str, Chart], periods: Periods, *, mail: bool,
                notes: list[str] | None = None, built_at: datetime | None = None,
                ui_url: str | None = None) -> str:
    template = _environment().get_template(TEMPLATE)
    rows_of: dict[str, list[dict[str, Any]]] = {}
    for table in marts.tables():
        records = table.records()
        rows_of[table.key] = records[: table.html_rows] if table.html_rows else records
    return template.render(
        marts=marts, charts=charts, images=image_sources(charts, mail=mail), periods=periods, rows_of=rows_of,
        h=marts.headline, notes=notes or [], built_at=built_at, mail=mail, ui_url=ui_url,
    )


# ---------------------------------------------------------------- XLSX
def sheet_title(title: str, used: set[str]) -> str:
    base = _SHEET_BAD.sub("", title).strip("'")[:31] or "表"
    name, n = base, 2
    while name in used:
        suffix = f"({n})"
        name = base[: 31 - len(suffix)] + suffix
        n += 1
    used.add(name)
    return name


def _cell_value(value: Any, column: Column) -> Any:
    if _missing(value) or value.__class__.__name__ == "NaTType":
        return None
    if column.kind == "text":
        return neutralise(str(value))
    if column.kind == "int":
        return int(value)
    if column.kind in ("date",):
        return value if isinstance(value, date) else str(value)
    if column.kind == "datetime":
        return value.replace(tzinfo=None) if isinstance(value, datetime) else value
    return float(value)


def write_xlsx(marts: Marts, path: Path, periods: Periods, built_at: datetime | None = None) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    cover = wb.active
    assert cover is not None
    cover.title = "概览"
    used = {"概览"}
    cover.append(["经营日报", periods.report_day.isoformat()])
    cover.append(["数据截至", periods.as_of.isoformat()])
    if built_at is not None:
        cover.append(["生成时间（北京时间）", built_at.replace(tzinfo=None)])
        cover.cell(row=cover.max_row, column=2).number_format = XLSX_FORMATS["datetime"]
    cover.append([])
    cover.append(["工作表", "内容"])
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="1F5FA8")
    sheets: list[tuple[Table, str]] = []
    for table in marts.tables():
        name = sheet_title(table.title, used)
        sheets.append((table, name))
        cover.append([name, neutralise(table.note or table.title)])
    cover.column_dimensions["A"].width = 28
    cover.column_dimensions["B"].width = 90
    cover["A1"].font = Font(bold=True, size=14)

    for table, name in sheets:
        ws = wb.create_sheet(name)
        ws.append([c.label for c in table.columns])
        for cell in ws[1]:
            cell.font = header_font
            cell.fill = header_fill
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for record in table.records():
            ws.append([_cell_value(record[c.key], c) for c in table.columns])
        for idx, column in enumerate(table.columns, start=1):
            letter = get_column_letter(idx)
            fmt_code = XLSX_FORMATS.get(column.kind)
            width = max(10, min(48, 2 * len(column.label) + 2))
            for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                if column.kind == "text":
                    if cell.value is not None:
                        cell.data_type = "s"  # never a formula, whatever the text
                        width = max(width, min(48, 2 * len(str(cell.value)) + 2))
                elif fmt_code:
                    cell.number_format = fmt_code
            ws.column_dimensions[letter].width = width
        ws.freeze_panes = "A2"
        if table.note:
            ws.cell(row=ws.max_row + 2, column=1, value=neutralise("说明：" + table.note))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(str(path))
