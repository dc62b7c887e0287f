"""The files: the HTML carries the figures, the XLSX cells equal the marts, hostile text stays inert,
Chinese renders, and the day's run is recorded for the UI."""

from __future__ import annotations

import warnings
from datetime import date, datetime
from email import policy as email_policy
from email.parser import BytesParser
from html.parser import HTMLParser

import pytest
from openpyxl import load_workbook

from bridge.report import archive, charts, render
from bridge.report.model import Column

from .conftest import BUILT_AT, HOSTILE_COMPANY, HOSTILE_DEAL, HOSTILE_OWNER, REPORT_DAY


class _Tables(HTMLParser):
    """Cell texts of every <table data-table=...> of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = dict(attrs)
        if tag == "table" and a.get("data-table"):
            self.current = a["data-table"]
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None and self.current:
            self.tables[self.current].append(self.row)
            self.row = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self.cell is not None:
            self.cell.append(data)


def _page_tables(path) -> dict[str, list[list[str]]]:  # type: ignore[no-untyped-def]
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tables


def test_html_shows_every_table_with_the_mart_figures(built_report) -> None:  # type: ignore[no-untyped-def]
    html = built_report.paths["html"].read_text(encoding="utf-8")
    assert "经营日报" in html
    assert "2026年11月26日" in html
    page = _page_tables(built_report.paths["html"])
    for table in built_report.marts.tables():
        cells = page[table.key]
        assert cells[0] == [c.label for c in table.columns], table.key
        shown = table.records()[: table.html_rows] if table.html_rows else table.records()
        assert len(cells) - 1 == max(len(shown), 1)
        for got, want in zip(cells[1:], shown, strict=False):
            assert got == [render.fmt(want[c.key], c.kind) for c in table.columns], table.key
    assert f"¥{built_report.figures['won_amount_ytd']:,.2f}" in html
    # self-contained: charts are data URIs, nothing is fetched
    assert html.count('src="data:image/png;base64,') == 4
    assert "http://" not in html.replace("http://evil.example", "")
    assert "<script" not in html


def test_html_escapes_hostile_names(built_report) -> None:  # type: ignore[no-untyped-def]
    html = built_report.paths["html"].read_text(encoding="utf-8")
    assert HOSTILE_COMPANY not in html  # the quotes are escaped
    assert "=HYPERLINK(&#34;http://evil.example/x&#34;,&#34;点我领奖&#34;)" in html
    page = _page_tables(built_report.paths["html"])
    customers = [row[2] for row in page["contracts_open"][1:]]
    assert HOSTILE_COMPANY in customers  # shown as text, exactly


def test_xlsx_cells_equal_the_marts(built_report) -> None:  # type: ignore[no-untyped-def]
    wb = load_workbook(built_report.paths["xlsx"])
    assert wb.sheetnames[0] == "概览"
    sheets = wb.sheetnames[1:]
    tables = built_report.marts.tables()
    assert len(sheets) == len(tables)
    for name, table in zip(sheets, tables, strict=True):
        ws = wb[name]
        header = [c.value for c in ws[1]]
        assert header == [c.label for c in table.columns], name
        records = table.records()
        for r, record in enumerate(records, start=2):
            for col_idx, column in enumerate(table.columns, start=1):
                cell = ws.cell(row=r, column=col_idx)
                want = record[column.key]
                if want is None or want == "" or (isinstance(want, float) and want != want):
                    assert cell.value is None, (name, r, column.key)
                elif column.kind == "text":
                    assert cell.value == render.neutralise(str(want))
                    assert cell.data_type == "s"
                elif column.kind == "cny":
                    assert cell.value == pytest.approx(float(want), abs=0.001)
                    assert "¥" in cell.number_format
                elif column.kind == "int":
                    assert cell.value == int(want)
                    assert cell.number_format == "#,##0"
                elif column.kind == "date":
                    assert cell.value.date() == want
                elif column.kind == "datetime":
                    assert cell.value == want.replace(tzinfo=None)
                else:
                    assert cell.value == pytest.approx(float(want)), (name, column.key)


def test_xlsx_neutralises_formula_text(built_report) -> None:  # type: ignore[no-untyped-def]
    wb = load_workbook(built_report.paths["xlsx"])
    texts = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert all(c.data_type == "s" for c in texts), "no cell is a formula"
    values = {c.value for c in texts}
    assert "'" + HOSTILE_COMPANY in values
    assert "'" + HOSTILE_DEAL in values
    assert "'" + HOSTILE_OWNER in values
    risky = [v for v in values if v.startswith(render.FORMULA_PREFIXES)]
    assert risky == []


@pytest.mark.parametrize(("text", "expected"), [
    ("=SUM(A1:A3)", "'=SUM(A1:A3)"), ("+86 138", "'+86 138"), ("-5", "'-5"), ("@cmd", "'@cmd"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("正常文本", "正常文本"), ("a=b", "a=b"), ("", ""),
])
def test_neutralise(text: str, expected: str) -> None:
    assert render.neutralise(text) == expected


def test_font_covers_the_chinese_of_the_charts(built_report) -> None:  # type: ignore[no-untyped-def]
    found = charts.cjk_font()
    assert found is not None, "no CJK font: install fonts-noto-cjk (scripts/system-deps.sh fonts)"
    family, path = found
    texts = charts.chart_texts(built_report.marts)
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t)
    assert charts.missing_glyphs(texts, path) == set(), f"{family} ({path}) lacks glyphs"
    # and drawing them raises no missing-glyph warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts.pipeline_chart(built_report.marts.table("pipeline_stage").frame)
    assert not [w for w in caught if "missing from font" in str(w.message)]


def test_missing_glyphs_detects_a_font_without_chinese() -> None:
    from matplotlib import font_manager

    latin = font_manager.findfont("DejaVu Sans")
    assert charts.missing_glyphs(["销售漏斗"], latin) == set("销售漏斗")


def test_mail_message_is_built_with_inline_charts_and_the_workbook(built_report) -> None:  # type: ignore[no-untyped-def]
    msg = BytesParser(policy=email_policy.default).parsebytes(built_report.paths["eml"].read_bytes())
    assert msg["Subject"] == "经营日报 2026-11-26"
    html = msg.get_body(preferencelist=("html",)).get_content()
    cids = {p["Content-ID"].strip("<>") for p in msg.walk() if p.get_content_type() == "image/png"}
    assert len(cids) == 4
    assert all(f"cid:{c}" in html for c in cids)
    assert "data:image" not in html
    [xlsx] = [p for p in msg.iter_attachments() if p.get_filename() and p.get_filename().endswith(".xlsx")]
    assert xlsx.get_filename() == "经营日报_2026-11-26.xlsx"
    assert xlsx.get_content() == built_report.paths["xlsx"].read_bytes()


def test_report_run_is_recorded_for_the_ui(report_hub, built_report) -> None:  # type: ignore[no-untyped-def]
    with report_hub.engine.connect() as conn:
        record = archive.get_report(conn, REPORT_DAY)
        listed = archive.list_reports(conn)
    assert record is not None
    assert record.html_path == built_report.paths["html"]
    assert record.xlsx_path.exists()
    assert record.recipients == ["boss@example.com", "cfo@example.com"]
    assert record.sent_at is None
    assert record.built_at == BUILT_AT
    assert record.figures["won_amount_day"] == built_report.figures["won_amount_day"]
    assert [r.day for r in listed] == [REPORT_DAY]


def test_rebuild_keeps_the_sent_time_and_lists_newest_first(hub_copy, policy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bridge.report.build import ReportRequest, build_report, owner_names

    sent = datetime(2026, 11, 25, 23, 35, tzinfo=BUILT_AT.tzinfo)
    kwargs = dict(owners=owner_names(hub_copy.owners), recipients=["boss@example.com"], built_at=BUILT_AT,
                  out_root=tmp_path)
    first = build_report(hub_copy.engine, hub_copy.dictionary, policy, ReportRequest(report_day=REPORT_DAY, **kwargs))
    with hub_copy.engine.begin() as conn:
        archive.mark_sent(conn, REPORT_DAY, ["boss@example.com"], sent)
    html_before = first.paths["html"].read_bytes()
    again = build_report(hub_copy.engine, hub_copy.dictionary, policy, ReportRequest(report_day=REPORT_DAY, run_id="rerun",
                         **kwargs))
    with hub_copy.engine.begin() as conn:
        archive.record_build(conn, day=date(2026, 11, 25), run_id="earlier", built_at=BUILT_AT,
                             paths={"html": tmp_path / "x.html", "xlsx": tmp_path / "x.xlsx"}, recipients=[], figures={})
    with hub_copy.engine.connect() as conn:
        record = archive.get_report(conn, REPORT_DAY)
        days = [r.day for r in archive.list_reports(conn)]
    assert record is not None
    assert record.sent_at == sent
    assert record.run_id == "rerun"
    assert again.paths["html"].read_bytes() == html_before  # same data, same page
    assert days == [REPORT_DAY, date(2026, 11, 25)]
    assert sorted(p.name for p in (tmp_path / "2026-11-26").iterdir()) == [
        "daily_report_2026-11-26.eml", "daily_report_2026-11-26.html", "daily_report_2026-11-26.xlsx"]


def test_fmt_shows_missing_values_as_a_dash() -> None:
    assert render.fmt(None, "cny") == "—"
    assert render.fmt(float("nan"), "int") == "—"
    assert render.fmt(1234.5, "cny") == "¥1,234.50"
    assert render.fmt(0.125, "pct") == "+12.5%"
    assert render.fmt(0.5, "share") == "50.0%"
    assert Column("x", "X").kind == "text"
