"""Build one day's report: hub → marts → charts → HTML, XLSX, mail → files + ``report_run``.

I/O sits here and in :mod:`bridge.report.load`; the computations are in
:mod:`bridge.report.marts`. Callers pass the owner names (the DAG task reads
them from the CRM) so the function runs the same in tests, the bench and the
DAG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from bridge.dictionary import Dictionary
from bridge.hooks.hubspot_codec import owner_of
from bridge.hub import store
from bridge.permissions import Policy
from bridge.report import archive, charts, delivery, journey_sections, load, marts, render
from bridge.report.model import Marts
from bridge.report.periods import Periods, calendar_notes, report_periods
from bridge.workdays import WorkCalendar

log = logging.getLogger(__name__)
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class BuiltReport:
    day: date
    periods: Periods
    paths: dict[str, Path]
    figures: dict[str, Any]
    marts: Marts
    notes: list[str]
    recipients: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    rows_read: dict[str, int] = field(default_factory=dict)


def owner_names(owners: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """HubSpot owners → {owner id: name as staff know it} (Chinese order: family name first)."""
    names: dict[str, str] = {}
    for o in owners:
        if o.get("id") is None:
            continue
        typed = owner_of(o)
        last, first = typed.family_name, typed.given_name
        ascii_name = (last + first).isascii()
        name = (f"{first} {last}".strip() if ascii_name else f"{last}{first}") or typed.email
        names[typed.id] = name or typed.id
    return names


def _deal_name_lookup(engine: Engine, policy: Policy, role: str):  # type: ignore[no-untyped-def]
    def lookup(ids: Sequence[str]) -> dict[str, str]:
        with engine.connect() as conn:
            found = store.get_snapshots(conn, "crm", "deal", ids)
        out: dict[str, str] = {}
        for sid, snap in found.items():
            name = policy.project("deal", snap.payload, role).get("deal_name")
            if name:
                out[sid] = str(name)
        return out

    return lookup


def _plain_text(m: Marts, periods: Periods) -> str:
    h = m.headline
    lines = [f"经营日报 {periods.report_day.isoformat()}（数据截至 {periods.as_of.isoformat()}）", ""]
    for label, key, kind in ((periods.day.label + "赢单金额", "won_amount_day", "cny"),
                             ("本月累计赢单金额", "won_amount_mtd", "cny"), ("本年累计赢单金额", "won_amount_ytd", "cny"),
                             ("在途商机金额", "open_pipeline_amount", "cny"), ("数据健康分", "health_score", "score"),
                             ("隔离区待处理", "quarantine_open", "int")):
        lines.append(f"{label}：{render.fmt(h.get(key), kind)}")
    lines += ["", "完整报告请使用支持 HTML 的邮件客户端查看，表格见附件 XLSX。"]
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportRequest:
    """Which day's report to build, for whom, and where it goes (the hub and configuration aside)."""

    report_day: date
    owners: Mapping[str, str]
    recipients: Sequence[str]
    calendar: WorkCalendar | None = None
    top_n: int = 10
    run_id: str = "manual"
    built_at: datetime | None = None
    out_root: Path | None = None
    notes: Sequence[str] = ()
    ui_url: str | None = None
    batch: int = load.BATCH
    audience: str | None = None  # the edition's role; None = the policy's audiences.report.daily_report


def edition_of(policy: Policy, request: ReportRequest) -> tuple[str, str]:
    """(role the report is read by, edition suffix): ``""`` for the main edition (the policy's report audience)."""
    main = policy.audience("report", "daily_report")
    role = request.audience or main
    if role not in policy.roles:
        raise ValueError(f"report.editions: 受众角色 {role!r} 不在 include/permissions.yaml 的 roles 中；"
                         f"可用: {', '.join(policy.roles)}。")
    return role, ("" if role == main else role)


def build_report(
    engine: Engine, dictionary: Dictionary, policy: Policy, request: ReportRequest
) -> BuiltReport:
    """Build and store the report of ``request.report_day``; returns where it is and its headline figures."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    report_day, calendar = request.report_day, request.calendar
    built_at = request.built_at or datetime.now(UTC)
    role, edition = edition_of(policy, request)
    periods = report_periods(report_day, calendar)
    with engine.connect() as conn:
        data = load.load_report_data(conn, dictionary, policy, role=role, built_at=built_at,
                                     health_until=report_day, reading=load.ReportReading(batch=request.batch))
    data.role_label = policy.roles.get(role, role)
    timings["load"] = time.perf_counter() - started

    t = time.perf_counter()
    names = marts.Names(owners=request.owners, customers=_customer_names(data))
    result = marts.build_marts(
        data,
        periods,
        marts.Labels.from_dictionary(dictionary),
        names,
        top_n=request.top_n,
        lookup_deal_names=_deal_name_lookup(engine, policy, role),
    )
    journey_sections.add_to_report(engine, policy, role, periods, result, built_at=built_at)
    timings["marts"] = time.perf_counter() - t

    t = time.perf_counter()
    all_notes = list(request.notes)
    all_notes += calendar_notes(report_day, calendar)
    if charts.cjk_font() is None:
        all_notes.append(charts.MISSING_FONT_NOTE)
    chart_map = charts.build_charts(result)
    timings["charts"] = time.perf_counter() - t

    t = time.perf_counter()
    label = f"（{policy.roles.get(role, role)}版）" if edition else ""
    paths = _write_outputs(result, chart_map, periods, all_notes, request, built_at, (edition, label))
    timings["render"] = time.perf_counter() - t

    figures = {k: v for k, v in result.headline.items()}
    with engine.begin() as conn:
        if edition:
            archive.record_edition(conn, day=report_day, audience=edition, paths=paths,
                                   recipients=list(request.recipients))
        else:
            archive.record_build(conn, day=report_day, run_id=request.run_id, built_at=built_at, paths=paths,
                                 recipients=list(request.recipients), figures=figures)
    timings["total"] = time.perf_counter() - started
    log.info("daily report %s built in %.1f s (%s); rows read %s", report_day, timings["total"],
             ", ".join(f"{k} {v:.1f}s" for k, v in timings.items() if k != "total"), data.counts)
    return BuiltReport(day=report_day, periods=periods, paths=paths, figures=figures, marts=result, notes=all_notes,
                       recipients=list(request.recipients), timings=timings, rows_read=data.counts)


def _customer_names(data: load.ReportData) -> dict[str, str]:
    """CRM company id → name, from the companies the report read (those the audience may see)."""
    companies = data.frames["company"]
    if not {"crm_id", "name"} <= set(companies.columns):
        return {}
    known = companies[companies["crm_id"].notna() & companies["name"].notna()]
    return {str(k): str(v) for k, v in zip(known["crm_id"], known["name"], strict=True)}


def _write_outputs(result: Marts, chart_map: dict[str, charts.Chart], periods: Periods, notes: list[str],
                   request: ReportRequest, built_at: datetime, edition: tuple[str, str] = ("", "")) -> dict[str, Path]:
    """The saved page, the workbook and the mail (``.eml``) of the day, each written atomically; their paths."""
    report_day, local_built = request.report_day, built_at.astimezone(TZ)
    paths = archive.report_paths(report_day, request.out_root, edition[0])
    page = render.render_html(result, chart_map, periods, mail=False, notes=notes, built_at=local_built,
                              ui_url=request.ui_url)
    archive.write_atomic(paths["html"], page.encode("utf-8"))
    tmp_xlsx = paths["xlsx"].with_name(f".{paths['xlsx'].name}.tmp")
    render.write_xlsx(result, tmp_xlsx, periods, built_at=local_built)
    tmp_xlsx.replace(paths["xlsx"])
    mail_html = render.render_html(result, chart_map, periods, mail=True, notes=notes, built_at=local_built,
                                   ui_url=request.ui_url)
    message = delivery.build_message(
        subject=delivery.subject_for(report_day) + edition[1], html=mail_html, text=_plain_text(result, periods),
        charts=chart_map, attachments=[(paths["xlsx"], f"经营日报_{report_day.isoformat()}.xlsx")],
        sender="", recipients=list(request.recipients))
    archive.write_atomic(paths["eml"], bytes(message))
    return paths
