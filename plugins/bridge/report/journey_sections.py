"""Sections 客户旅程 and 绩效与满意度 of the daily report (issue 20), added after the nine of :mod:`report.marts`.

* **客户旅程** (every audience): new customers by the source of their first touch (昨日 / 本月累计 / 本年累计),
  the funnel per campaign (:mod:`bridge.journey.funnel`), and the stages deals stay longest in
  (median days of finished stays, from ``deal_stage_history``). Counts only: no person, no customer name.
* **绩效与满意度** (only when the report's audience role may see every person's rating, i.e. the policy lets it
  see ``performance_review.rating`` — 人力资源部 / 管理层): the latest period's groups of at least
  ``journey.min_group_size`` people and the correlation of rating with CSAT / NPS with its interval and sample
  sizes. A mail is forwarded: no individual row is ever put in it (those are on the audited page).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Connection, Engine

from bridge import settings
from bridge.journey import funnel as funnel_mod
from bridge.journey import marts as journey_marts
from bridge.journey import views
from bridge.journey.stats import METHOD_LABELS
from bridge.journey.view_settings import JourneyViews, journey_views
from bridge.permissions import Policy
from bridge.report.model import Column, ColumnKind, Marts, Section, Table
from bridge.report.periods import Periods

UNKNOWN_SOURCE = "（来源未知）"


# Every column of these sections: key → (Chinese header, kind); a table names its keys (:func:`_columns`).
COLUMNS: dict[str, tuple[str, ColumnKind]] = {
    "source": ("首次接触来源", "text"), "day": ("昨日", "int"), "mtd": ("本月累计", "int"), "ytd": ("本年累计", "int"),
    "campaign": ("营销活动", "text"), "contacts": ("触达联系人", "int"), "leads": ("线索客户", "int"),
    "with_deal": ("商机客户", "int"), "won": ("赢单客户", "int"), "lead_to_deal": ("线索→商机", "share"),
    "deal_to_won": ("商机→赢单", "share"), "cycle_days": ("周期（天）", "days"), "stage": ("商机阶段", "text"),
    "median_days": ("停留中位数（天）", "days"), "deals": ("商机数", "int"), "group": ("分组", "text"),
    "people": ("人数", "int"), "responses": ("反馈份数", "int"), "csat": ("CSAT 平均分", "score"),
    "nps": ("NPS", "score"), "win_rate": ("赢单率", "share"), "deal_cycle_days": ("成交周期（天）", "days"),
    "measure": ("指标", "text"), "r": ("相关系数", "score"), "low": ("区间下限", "score"),
    "high": ("区间上限", "score"), "excluded": ("因反馈不足未计入", "int"),
}  # fmt: skip


def _columns(*keys: str, **labels: str) -> list[Column]:
    """The columns of ``keys`` in that order; ``labels`` overrides a header (e.g. 上一工作日（…）)."""
    return [Column(k, labels.get(k, COLUMNS[k][0]), COLUMNS[k][1]) for k in keys]


def _frame(rows: list[dict[str, object]], cols: list[Column]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[c.key for c in cols])


def new_customers_table(
    facts: journey_marts.FunnelFacts, periods: Periods, source_labels: Mapping[str, str]
) -> Table:
    spans = (("day", periods.day), ("mtd", periods.mtd), ("ytd", periods.ytd))
    counts = {
        key: funnel_mod.new_customers_by_source(facts.created, facts.touches, span.start, span.end)
        for key, span in spans
    }
    sources = sorted({s for c in counts.values() for s in c}, key=lambda s: (-counts["ytd"].get(s, 0), s))
    cols = _columns("source", "day", "mtd", "ytd", day=periods.day.label)
    rows: list[dict[str, object]] = [
        {
            "source": source_labels.get(s, s) if s else UNKNOWN_SOURCE,
            **{k: counts[k].get(s, 0) for k, _ in spans},
        }
        for s in sources
    ]
    return Table(
        "journey_new_customers",
        "新增客户（按来源）",
        cols,
        _frame(rows, cols),
        note="客户按 CRM 创建日期计；来源为其联系人最早一次接触（市场活动参与或原始来源）。",
    )


def funnel_table(facts: journey_marts.FunnelFacts) -> Table:
    rows_in = funnel_mod.funnel(facts.touches, facts.deals)
    cols = _columns(
        "campaign", "contacts", "leads", "with_deal", "won", "lead_to_deal", "deal_to_won", "cycle_days"
    )
    rows: list[dict[str, object]] = [
        {
            "campaign": facts.campaign_names.get(r.campaign_id, f"营销活动 {r.campaign_id}")
            if r.campaign_id
            else journey_marts.NO_CAMPAIGN,
            "contacts": r.contacts,
            "leads": r.leads,
            "with_deal": r.with_deal,
            "won": r.won,
            "lead_to_deal": r.lead_to_deal,
            "deal_to_won": r.deal_to_won,
            "cycle_days": r.cycle_days,
        }
        for r in rows_in
    ]
    return Table(
        "journey_funnel",
        "营销活动漏斗",
        cols,
        _frame(rows, cols),
        html_rows=15,
        note="周期 = 首次接触到首个赢单签约日的中位天数。",
    )


def slowest_table(conn: Connection, stage_labels: Mapping[str, str], now: datetime) -> Table:
    ranked = journey_marts.slowest_stages(journey_marts.stage_spans(conn), now=now)
    cols = _columns("stage", "median_days", "deals")
    rows: list[dict[str, object]] = [
        {"stage": stage_labels.get(s, s), "median_days": d, "deals": n} for s, d, n in ranked
    ]
    return Table(
        "journey_stage_stay",
        "商机阶段停留（最慢在前）",
        cols,
        _frame(rows, cols),
        note="只计已离开的阶段；阶段变化按同步所见记录，两次同步之间的多次变化记为一次。",
    )


def journey_section(
    conn: Connection, policy: Policy, periods: Periods, headline: dict[str, object]
) -> Section:
    d = policy.dictionary
    stage_labels = {v.canonical: v.label for v in d.value_maps["deal_stage"].values}
    source_map = d.value_maps.get("original_source")
    source_labels = {v.canonical: v.label for v in source_map.values} if source_map else {}
    facts = journey_marts.funnel_facts(conn)
    sec = Section("journey", "客户旅程", "新客户从哪里来、营销活动的转化，以及商机在哪个阶段停留最久。")
    new_t = new_customers_table(facts, periods, source_labels)
    stay = slowest_table(conn, stage_labels, datetime.now(UTC))
    sec.tables += [new_t, funnel_table(facts), stay]
    headline["journey_new_customers_mtd"] = int(new_t.frame["mtd"].sum()) if len(new_t.frame) else 0
    headline["journey_slowest_stage"] = str(stay.frame["stage"].iloc[0]) if len(stay.frame) else None
    if len(stay.frame):
        sec.notes.append(
            f"停留最久的阶段：{stay.frame['stage'].iloc[0]}（中位 {stay.frame['median_days'].iloc[0]:.1f} 天）。"
        )
    return sec


def people_section(conn: Connection, policy: Policy, role: str, cfg: JourneyViews) -> Section | None:
    """The section for an audience that may see every person's rating; None for any other audience."""
    if role not in views.individual_roles(policy):
        return None
    view = views.people_view(
        conn, views.Looker("report", "report", None), policy, cfg
    )  # no person: groups only
    sec = Section(
        "people",
        "绩效与满意度",
        f"销售负责人的绩效与其客户满意度：不少于 {cfg.min_group_size} 人的分组汇总和相关性（个人数据只在"
        "「绩效与满意度」页面向人力资源部和上级显示）。",
    )
    if view.period is None:
        sec.notes.append("还没有绩效结果。")
        return sec
    pid = view.period.id
    gcols = _columns("group", "people", "responses", "csat", "nps", "win_rate", "deal_cycle_days")
    groups: list[dict[str, object]] = [
        {
            "group": g.group,
            "people": g.people,
            "responses": g.responses,
            "csat": g.csat,
            "nps": g.nps,
            "win_rate": g.win_rate,
            "deal_cycle_days": g.cycle_days,
        }
        for g in view.groups
        if g.period_id == pid
    ]
    sec.tables.append(
        Table("people_groups", f"绩效分组与满意度（{view.period.name}）", gcols, _frame(groups, gcols))
    )
    sec.tables.append(_correlation_table(view, cfg))
    if not groups:
        sec.notes.append(f"本周期参评人数不足 {cfg.min_group_size} 人，不显示分组汇总。")
    return sec


def _correlation_table(view: views.PeopleView, cfg: JourneyViews) -> Table:
    pid = view.period.id if view.period else ""
    cols = _columns(
        "measure", "r", "low", "high", "people", "responses", "excluded", r=METHOD_LABELS[cfg.correlation]
    )
    rows: list[dict[str, object]] = [
        {
            "measure": "绩效 × CSAT" if c.measure == "csat" else "绩效 × NPS",
            "r": c.result.r if c.result else None,
            "low": c.result.low if c.result else None,
            "high": c.result.high if c.result else None,
            "people": c.people,
            "responses": c.responses,
            "excluded": c.excluded,
        }
        for c in view.correlations
        if c.period_id == pid
    ]
    return Table(
        "people_correlation",
        "绩效与满意度的相关性",
        cols,
        _frame(rows, cols),
        note=f"{cfg.confidence:.0%} 置信区间（Fisher z）；反馈少于 {cfg.min_responses} 份的人不计入；"
        f"人数不足 {cfg.min_group_size} 人时不计算。",
    )


def sections(
    conn: Connection,
    policy: Policy,
    role: str,
    periods: Periods,
    cfg: JourneyViews,
    headline: dict[str, object],
) -> list[Section]:
    """The journey sections for the report's audience ``role`` (people × satisfaction only for HR/management)."""
    out = [journey_section(conn, policy, periods, headline)]
    people = people_section(conn, policy, role, cfg)
    if people is not None:
        out.append(people)
    return out


def add_to_report(
    engine: Engine,
    policy: Policy,
    role: str,
    periods: Periods,
    result: Marts,
    *,
    built_at: datetime,
) -> None:
    """Record the deals' stage changes since the last call, then append the journey sections to ``result``.

    A ``journey_views:`` settings section that cannot be used leaves the sections out with a note (the report goes out).
    """
    with engine.begin() as conn:
        journey_marts.record_stage_changes(conn, now=built_at)
    try:
        cfg = journey_views()
    except settings.SettingsError as exc:
        sec = Section("journey", "客户旅程", "客户旅程与绩效满意度。")
        sec.notes.append(f"客户旅程配置有误（{exc}），本节从略。")
        result.sections.append(sec)
        return
    with engine.connect() as conn:
        result.sections += sections(conn, policy, role, periods, cfg, result.headline)
