"""The tables of the daily report: pure pandas over the frames of :mod:`bridge.report.load`.

No I/O here: every function takes frames and returns :class:`Table` objects,
so tests compare each of them with an independent computation. Definitions
(also in docs/report.md):

* business dates are Asia/Shanghai; amounts are CNY, summed in integer cents;
* a deal is **won** when its stage is 赢单 (won) or 交付完成 (delivered); its
  won date is its ``close_date`` (the CRM sets the close date when a deal is
  marked won); a **new** deal is counted on the day of its ``created_at``;
* the **open** pipeline is every deal not won, delivered or lost;
* a won deal's OA approval is that of its 立项申请: the instance linked in the
  hub (xref ``deal_project``), else the latest instance whose form names the
  deal, else the status written back on the deal, else 未发起立项;
* expenses and travel count **approved** instances (by expense date / start
  date); visits count pending and approved plans (by visit date), as the CRM
  activities do;
* approval cycle time = decided_at − created_at of instances approved or
  rejected in the last 30 days.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bridge.clock import from_ms
from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.journey import ENTITIES as JOURNEY_ENTITIES
from bridge.report.load import ReportData
from bridge.report.model import Column, Marts, Section, Table
from bridge.report.periods import Periods, Span

TZ = ZoneInfo("Asia/Shanghai")
WON_STAGES = ("won", "delivered")
CLOSED_STAGES = ("won", "delivered", "lost")
CYCLE_STATUSES = ("APPROVED", "REJECTED")
VISIT_STATUSES = ("PENDING", "APPROVED")
NO_APPROVAL = "NONE"
PENDING_ALERT_DAYS = 3
EXCEPTIONS_KEPT = 200

NO_OWNER = "（无负责人）"
NO_CUSTOMER = "（未关联客户）"
NO_PROJECT = "（未关联项目）"
INVALID_STAGE = "（阶段无效）"

REASON_LABELS = store.REASON_LABELS
DIRECTION_LABELS = store.DIRECTION_LABELS
COUNT_LABELS = {
    "read": "读取", "extracted": "读取", "staged": "入库快照", "changed": "有变化", "new": "新记录",
    "unchanged": "无变化", "created": "新建", "updated": "更新", "written": "写入", "sent": "发送",
    "skipped": "跳过", "deferred": "推迟", "quarantined": "隔离", "released": "释放", "failed": "失败",
    "api_calls": "接口调用",
}
SCOPE_LABELS = {"overall": "总体", "entity": "数据对象", "department": "责任部门", "data_owner": "数据责任人"}
ARCHIVED_DEALS_NOTE = "CRM 中已删除（归档）的商机 {n} 个未计入本节数字（删除后 90 天内可从回收站恢复，恢复后重新计入）。"


class HiddenFields(Exception):
    """A table needs fields the report's audience may not see."""

    def __init__(self, entity: str, fields: Sequence[str]) -> None:
        super().__init__(f"{entity}: {', '.join(fields)}")
        self.entity = entity
        self.fields = list(fields)


@dataclass(frozen=True)
class Labels:
    """Chinese labels and orders from the data dictionary."""

    stages: dict[str, str]  # canonical → label, dictionary order
    approval: dict[str, str]
    entities: dict[str, str]
    departments: dict[str, str]
    field_labels: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_dictionary(cls, d: Dictionary) -> Labels:
        return cls(
            stages={v.canonical: v.label for v in d.value_maps["deal_stage"].values},
            approval={v.canonical: v.label for v in d.value_maps["approval_status"].values},
            entities={name: e.label for name, e in d.entities.items()},
            departments={k: dep.label for k, dep in d.departments.items()},
            field_labels={(e.name, f.name): f.label for e in d.entities.values() for f in e.fields.values()},
        )


@dataclass(frozen=True)
class Names:
    """How ids are shown: owner names (CRM owners) and customer names (company snapshots)."""

    owners: Mapping[str, str]
    customers: Mapping[str, str]

    def owner(self, owner_id: Any) -> str:
        if owner_id is None or (isinstance(owner_id, float) and np.isnan(owner_id)):
            return NO_OWNER
        return self.owners.get(str(owner_id)) or f"负责人 {owner_id}"

    def customer(self, company_id: Any) -> str:
        if company_id is None or (isinstance(company_id, float) and np.isnan(company_id)):
            return NO_CUSTOMER
        return self.customers.get(str(company_id)) or f"未知客户（{company_id}）"


# ---------------------------------------------------------------- helpers
def _need(data: ReportData, entity: str, fields: Sequence[str]) -> pd.DataFrame:
    frame = data.frames[entity]
    missing = [f for f in fields if f not in frame.columns]
    if missing:
        raise HiddenFields(entity, missing)
    return frame


def business_day(values: pd.Series) -> pd.Series:
    """UTC datetimes → Asia/Shanghai business dates (midnight, naive)."""
    return values.dt.tz_convert(TZ).dt.tz_localize(None).dt.normalize()


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def within(days: pd.Series, span: Span) -> pd.Series:
    return (days >= _ts(span.start)) & (days <= _ts(span.end))


def _yuan(cents: float | int) -> float:
    return round(float(cents) / 100.0, 2)


def _change(current: float, previous: float) -> float | None:
    if previous == 0:
        return None
    return (current - previous) / abs(previous)


def _cents_sum(values: pd.Series) -> float:
    return float(values.sum(skipna=True)) if len(values) else 0.0


def _start_of(day: date) -> datetime:
    """Midnight Asia/Shanghai of ``day`` as UTC."""
    return datetime.combine(day, time(0), tzinfo=TZ).astimezone(UTC)


def _local(ts: Any) -> datetime | None:
    if ts is None or pd.isna(ts):
        return None
    value = pd.Timestamp(ts)
    if value.tzinfo is None:
        value = value.tz_localize(UTC)
    return value.tz_convert(TZ).tz_localize(None).to_pydatetime()


def _str_keys(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


# ---------------------------------------------------------------- deals: periods
def deal_period_tables(data: ReportData, periods: Periods) -> tuple[Table, Table, dict[str, Any]]:
    """New deals (by created date) and won deals (by close date) per period against the previous one."""
    deals = _need(data, "deal", ["stage", "contract_amount", "close_date", "created_at"])
    created = business_day(deals["created_at"])
    won = deals["stage"].isin(WON_STAGES).to_numpy()
    close = deals["close_date"]
    amount = deals["contract_amount"]
    new_rows, won_rows = [], []
    headline: dict[str, Any] = {}
    for key, cur, prev in periods.pairs():
        figures = {}
        for which, span in (("cur", cur), ("prev", prev)):
            is_new = within(created, span).to_numpy()
            is_won = won & within(close, span).to_numpy()
            figures[which] = (int(is_new.sum()), _cents_sum(amount[is_new]), int(is_won.sum()),
                              _cents_sum(amount[is_won]))
        (nc, na, wc, wa), (pnc, pna, pwc, pwa) = figures["cur"], figures["prev"]
        new_rows.append({"period": cur.label, "compare": prev.label, "count": nc, "amount": _yuan(na),
                         "prev_count": pnc, "prev_amount": _yuan(pna), "count_change": _change(nc, pnc),
                         "amount_change": _change(na, pna)})
        won_rows.append({"period": cur.label, "compare": prev.label, "count": wc, "amount": _yuan(wa),
                         "prev_count": pwc, "prev_amount": _yuan(pwa), "count_change": _change(wc, pwc),
                         "amount_change": _change(wa, pwa)})
        headline[f"new_deals_{key}"] = nc
        headline[f"won_count_{key}"] = wc
        headline[f"won_amount_{key}"] = _yuan(wa)
    cols = [Column("period", "期间"), Column("count", "数量", "int"), Column("amount", "金额（元）", "cny"),
            Column("compare", "对比期间"), Column("prev_count", "对比数量", "int"),
            Column("prev_amount", "对比金额（元）", "cny"), Column("count_change", "数量变化", "pct"),
            Column("amount_change", "金额变化", "pct")]
    new_t = Table("new_deals", "新增商机", cols, pd.DataFrame(new_rows),
                  note="按商机创建日期（北京时间）统计；金额为合同金额，缺失金额的商机只计数量。")
    won_t = Table("won_deals", "赢单（签约）", cols, pd.DataFrame(won_rows),
                  note="阶段为“赢单”或“交付完成”的商机，按预计签约日期（赢单时 CRM 记为签约日）统计。")
    return new_t, won_t, headline


def won_trend(data: ReportData, periods: Periods) -> pd.DataFrame:
    """Won amount and new deals per day over the last 30 days (chart series)."""
    deals = _need(data, "deal", ["stage", "contract_amount", "close_date", "created_at"])
    days = pd.date_range(_ts(periods.trailing30.start), _ts(periods.trailing30.end), freq="D")
    won = deals[deals["stage"].isin(WON_STAGES)]
    won = won[within(won["close_date"], periods.trailing30)]
    won_by_day = won.groupby(won["close_date"])["contract_amount"].sum()
    created = business_day(deals["created_at"])
    new_by_day = created[within(created, periods.trailing30)].value_counts()
    return pd.DataFrame({
        "day": days.date,
        "won_amount": [_yuan(won_by_day.get(d, 0.0)) for d in days],
        "new_deals": [int(new_by_day.get(d, 0)) for d in days],
    })


# ---------------------------------------------------------------- pipeline
def pipeline_by_stage(data: ReportData, labels: Labels) -> Table:
    deals = _need(data, "deal", ["stage", "contract_amount"])
    stage = _str_keys(deals["stage"]).fillna("")
    grouped = deals.groupby(stage.to_numpy(), observed=True)["contract_amount"].agg(["size", "sum"])
    rows = []
    for canonical, label in labels.stages.items():
        size, total = (grouped.loc[canonical] if canonical in grouped.index else (0, 0.0))
        rows.append({"stage": label, "stage_code": canonical, "deals": int(size), "amount": _yuan(total),
                     "open": canonical not in CLOSED_STAGES})
    if "" in grouped.index:
        size, total = grouped.loc[""]
        rows.append({"stage": INVALID_STAGE, "stage_code": "", "deals": int(size), "amount": _yuan(total),
                     "open": False})
    frame = pd.DataFrame(rows)
    return Table("pipeline_stage", "销售漏斗（按阶段）",
                 [Column("stage", "商机阶段"), Column("deals", "商机数", "int"), Column("amount", "合同金额（元）", "cny")],
                 frame.drop(columns=["open"]),
                 note="全部商机的当前阶段（截至出报时 CRM 同步到中枢库的状态）。“阶段无效”为 CRM 中无法映射的阶段值，已进入数据健康检查。")


def pipeline_by_owner(data: ReportData, labels: Labels, names: Names) -> Table:
    deals = _need(data, "deal", ["stage", "contract_amount", "owner_id"])
    open_stages = [s for s in labels.stages if s not in CLOSED_STAGES]
    live = deals[deals["stage"].isin(open_stages)]
    owner = _str_keys(live["owner_id"]).fillna("")
    stage = _str_keys(live["stage"])
    pivot = (live.assign(_owner=owner.to_numpy(), _stage=stage.to_numpy())
             .pivot_table(index="_owner", columns="_stage", values="contract_amount", aggfunc="sum",
                          fill_value=0.0, observed=True))
    counts = owner.value_counts()
    rows = []
    for owner_id in pivot.index:
        row: dict[str, Any] = {"owner": names.owner(owner_id or None)}
        total = 0.0
        for s in open_stages:
            cents = float(pivot.at[owner_id, s]) if s in pivot.columns else 0.0
            row[f"stage_{s}"] = _yuan(cents)
            total += cents
        row["open_amount"] = _yuan(total)
        row["open_deals"] = int(counts.get(owner_id, 0))
        rows.append(row)
    cols = [Column("owner", "负责人")] + [Column(f"stage_{s}", f"{labels.stages[s]}（元）", "cny") for s in open_stages]
    cols += [Column("open_amount", "在途合计（元）", "cny"), Column("open_deals", "在途商机数", "int")]
    frame = pd.DataFrame(rows, columns=[c.key for c in cols])
    frame = frame.sort_values(["open_amount", "owner"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return Table("pipeline_owner", "销售漏斗（按负责人，在途商机）", cols, frame,
                 note="在途 = 未赢单、未交付、未输单的商机；金额按阶段分列。")


# ---------------------------------------------------------------- contracts vs OA approvals
def deal_approval_state(data: ReportData, deal_ids: pd.Series) -> pd.Series:
    """The OA approval status of each deal's 立项申请 (see the module docstring for the order of sources)."""
    result = pd.Series([None] * len(deal_ids), index=deal_ids.index, dtype=object)
    ids = _str_keys(deal_ids)
    pi = data.frames.get("project_initiation")
    if pi is not None and {"instance_code", "approval_status"} <= set(pi.columns):
        status_by_code = dict(zip(_str_keys(pi["instance_code"]), _str_keys(pi["approval_status"]), strict=True))
        links = data.deal_links.sort_values("updated_at", kind="stable").drop_duplicates("crm_id", keep="last")
        linked = {crm: status_by_code.get(oa) for crm, oa in zip(links["crm_id"], links["oa_id"], strict=True)}
        result = ids.map(lambda d: linked.get(d) if d is not None else None).astype(object)
        if {"deal_id", "created_at"} <= set(pi.columns):
            latest = (pi[pi["deal_id"].notna()].sort_values("created_at", kind="stable")
                      .drop_duplicates("deal_id", keep="last"))
            by_form = dict(zip(_str_keys(latest["deal_id"]), _str_keys(latest["approval_status"]), strict=True))
            fill = ids.map(lambda d: by_form.get(d) if d is not None else None)
            result = result.where(result.notna(), fill)
    deals = data.frames["deal"]
    if "approval_status" in deals.columns:
        written = _str_keys(deals["approval_status"]).reindex(deal_ids.index)
        result = result.where(result.notna(), written)
    return result.fillna(NO_APPROVAL)


def contracts_vs_approvals(data: ReportData, periods: Periods, labels: Labels, names: Names,
                           lookup_deal_names: Callable[[Sequence[str]], Mapping[str, str]] | None,
                           ) -> tuple[Table, Table, dict[str, Any]]:
    deals = _need(data, "deal", ["crm_id", "stage", "contract_amount", "close_date"])
    won = deals[deals["stage"].isin(WON_STAGES) & within(deals["close_date"], periods.ytd)]
    state = deal_approval_state(data, won["crm_id"])
    order = ["APPROVED", *[c for c in labels.approval if c != "APPROVED"], NO_APPROVAL]
    state_labels = {c: labels.approval.get(c, "未发起立项") for c in order}
    total = _cents_sum(won["contract_amount"])
    rows = []
    for code, label in state_labels.items():
        part = won[(state == code).to_numpy()]
        cents = _cents_sum(part["contract_amount"])
        rows.append({"state": label, "state_code": code, "deals": len(part), "amount": _yuan(cents),
                     "share": (cents / total) if total else None})
    summary = Table("contracts_approval", "签约与 OA 立项审批", [
        Column("state", "立项审批状态"), Column("deals", "签约商机数", "int"), Column("amount", "合同金额（元）", "cny"),
        Column("share", "金额占比", "share")], pd.DataFrame(rows),
        note=f"{periods.ytd.label}签约（赢单/交付完成）的商机，对照其 OA 立项申请的审批状态。")

    open_issue = won[(state != "APPROVED").to_numpy()].assign(state_code=state[state != "APPROVED"].to_numpy())
    open_issue = open_issue.sort_values(["contract_amount", "crm_id"], ascending=[False, True], kind="stable",
                                        na_position="last").head(EXCEPTIONS_KEPT)
    ids = [str(x) for x in open_issue["crm_id"]]
    deal_names = dict(lookup_deal_names(ids)) if lookup_deal_names and ids else {}
    has_owner = "owner_id" in deals.columns
    has_company = "company_id" in deals.columns
    exc_rows = []
    for row in open_issue.itertuples(index=False):
        exc_rows.append({
            "deal": deal_names.get(str(row.crm_id)) or f"商机 {row.crm_id}",
            "crm_id": str(row.crm_id),
            "customer": names.customer(getattr(row, "company_id", None)) if has_company else "",
            "owner": names.owner(getattr(row, "owner_id", None)) if has_owner else "",
            "amount": None if pd.isna(row.contract_amount) else _yuan(row.contract_amount),
            "close_date": None if pd.isna(row.close_date) else pd.Timestamp(row.close_date).date(),
            "state": state_labels.get(row.state_code, str(row.state_code)),
        })
    exc_cols = [Column("deal", "商机"), Column("crm_id", "CRM商机编号"), Column("customer", "客户"),
                Column("owner", "负责人"), Column("amount", "合同金额（元）", "cny"), Column("close_date", "签约日期", "date"),
                Column("state", "立项审批状态")]
    exceptions = Table("contracts_open", "已签约但立项未通过", exc_cols, pd.DataFrame(exc_rows, columns=[c.key for c in exc_cols]),
                       note=f"按合同金额从高到低，最多列出 {EXCEPTIONS_KEPT} 条（邮件中显示前 15 条）。",
                       html_rows=15)
    not_approved = int((state != "APPROVED").sum())
    return summary, exceptions, {"contracts_ytd": len(won), "contracts_not_approved": not_approved}


# ---------------------------------------------------------------- approval cycle times
def approval_cycles(data: ReportData, periods: Periods, labels: Labels) -> Table:
    cutoff = _start_of(periods.report_day)
    alert_before = cutoff - timedelta(days=PENDING_ALERT_DAYS)
    rows = []
    for entity in ("project_initiation", "expense_claim", "travel_request", "visit_plan", "contract_amount_notice"):
        frame = data.frames.get(entity)
        if frame is None or not {"approval_status", "created_at"} <= set(frame.columns):
            continue
        row: dict[str, Any] = {"form": labels.entities.get(entity, entity), "decided": 0, "median_hours": None,
                               "p90_hours": None, "mean_hours": None}
        if "decided_at" in frame.columns:
            done = frame[frame["approval_status"].isin(CYCLE_STATUSES) & frame["decided_at"].notna()]
            done = done[within(business_day(done["decided_at"]), periods.trailing30)]
            hours = (done["decided_at"] - done["created_at"]).dt.total_seconds() / 3600.0
            hours = hours[hours >= 0]
            if len(hours):
                row.update(decided=len(hours), median_hours=round(float(hours.median()), 1),
                           p90_hours=round(float(hours.quantile(0.9)), 1), mean_hours=round(float(hours.mean()), 1))
        pending = frame[(frame["approval_status"] == "PENDING").to_numpy()]
        row["pending"] = len(pending)
        row["pending_old"] = int((pending["created_at"] < pd.Timestamp(alert_before)).sum())
        rows.append(row)
    cols = [Column("form", "审批类型"), Column("decided", "近30天完成审批数", "int"),
            Column("median_hours", "审批用时中位数（小时）", "hours"), Column("p90_hours", "审批用时 P90（小时）", "hours"),
            Column("mean_hours", "平均用时（小时）", "hours"), Column("pending", "审批中", "int"),
            Column("pending_old", f"超过{PENDING_ALERT_DAYS}天未审批", "int")]
    return Table("approval_cycle", "审批周期", cols, pd.DataFrame(rows, columns=[c.key for c in cols]),
                 note=f"用时 = 审批决定时间 − 提交时间，统计{periods.trailing30.label}内通过或拒绝的审批；"
                      f"“超过{PENDING_ALERT_DAYS}天未审批”截至 {periods.report_day:%Y-%m-%d} 0 时。")


# ---------------------------------------------------------------- expenses, travel, visits
def _oa_amounts(data: ReportData, entity: str, amount: str, when: str, key: str,
                periods: Periods) -> pd.DataFrame:
    """Approved amounts per ``key`` value: columns key, mtd, ytd, count_ytd (cents)."""
    frame = _need(data, entity, ["approval_status", amount, when, key])
    approved = frame[(frame["approval_status"] == "APPROVED").to_numpy()]
    keys = _str_keys(approved[key]).fillna("")
    in_mtd = within(approved[when], periods.mtd)
    in_ytd = within(approved[when], periods.ytd)
    values = approved[amount].fillna(0.0)
    out = pd.DataFrame({"key": keys.to_numpy(), "mtd": values.where(in_mtd, 0.0).to_numpy(),
                        "ytd": values.where(in_ytd, 0.0).to_numpy(), "count_ytd": in_ytd.astype(int).to_numpy()})
    return out.groupby("key", sort=False).sum()


@dataclass(frozen=True)
class ExpenseView:
    """How one expense table groups and labels its rows: by ``key`` (a column of both OA forms), shown as
    ``label_of(key)`` under ``key_label``, with an optional ``extra`` column."""

    key: str
    title: str
    table_key: str
    label_of: Callable[[str], str]
    key_label: str
    extra: Callable[[str], str] | None = None
    extra_label: str = ""


def expenses_by(data: ReportData, periods: Periods, view: ExpenseView) -> Table:
    label_of, extra = view.label_of, view.extra
    exp = _oa_amounts(data, "expense_claim", "amount", "expense_date", view.key, periods)
    trv = _oa_amounts(data, "travel_request", "estimated_cost", "start_date", view.key, periods)
    both = pd.merge(exp, trv, left_index=True, right_index=True, how="outer", suffixes=("_exp", "_trv")).fillna(0.0)
    both["total_ytd"] = both["ytd_exp"] + both["ytd_trv"]
    both = both[(both["total_ytd"] != 0) | (both["mtd_exp"] != 0) | (both["mtd_trv"] != 0)]
    rows = []
    for k, r in both.iterrows():
        row = {"name": label_of(str(k)), "key": str(k) or "",
               "expense_mtd": _yuan(r["mtd_exp"]), "expense_ytd": _yuan(r["ytd_exp"]),
               "travel_mtd": _yuan(r["mtd_trv"]), "travel_ytd": _yuan(r["ytd_trv"]),
               "total_ytd": _yuan(r["total_ytd"]), "claims_ytd": int(r["count_ytd_exp"] + r["count_ytd_trv"])}
        if extra is not None:
            row["extra"] = extra(str(k))
        rows.append(row)
    cols = [Column("name", view.key_label)]
    if extra is not None:
        cols.append(Column("extra", view.extra_label))
    cols += [Column("expense_mtd", "报销（本月，元）", "cny"), Column("expense_ytd", "报销（本年，元）", "cny"),
             Column("travel_mtd", "差旅预计（本月，元）", "cny"), Column("travel_ytd", "差旅预计（本年，元）", "cny"),
             Column("total_ytd", "本年合计（元）", "cny"), Column("claims_ytd", "本年单据数", "int")]
    frame = pd.DataFrame(rows, columns=[*[c.key for c in cols], "key"])
    frame = frame.sort_values(["total_ytd", "key"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return Table(view.table_key, view.title, cols, frame.drop(columns=["key"]), html_rows=15,
                 note="仅统计已通过的费用报销（按费用日期）和差旅申请（按出发日期，预计费用）。")


def visits_by_customer(data: ReportData, periods: Periods, names: Names) -> Table:
    visits = _need(data, "visit_plan", ["approval_status", "visit_date", "customer_id"])
    live = visits[visits["approval_status"].isin(VISIT_STATUSES) & visits["visit_date"].notna()]
    live = live[live["visit_date"] <= _ts(periods.as_of)]
    keys = _str_keys(live["customer_id"]).fillna("")
    frame = pd.DataFrame({"key": keys.to_numpy(), "mtd": within(live["visit_date"], periods.mtd).astype(int).to_numpy(),
                          "ytd": within(live["visit_date"], periods.ytd).astype(int).to_numpy(),
                          "last": live["visit_date"].to_numpy()})
    grouped = frame.groupby("key", sort=False).agg(mtd=("mtd", "sum"), ytd=("ytd", "sum"), last=("last", "max"))
    grouped = grouped[grouped["ytd"] > 0]
    rows = [{"customer": names.customer(k or None), "key": k, "visits_mtd": int(r["mtd"]),
             "visits_ytd": int(r["ytd"]), "last_visit": pd.Timestamp(r["last"]).date()}
            for k, r in grouped.iterrows()]
    cols = [Column("customer", "客户"), Column("visits_mtd", "本月拜访", "int"), Column("visits_ytd", "本年拜访", "int"),
            Column("last_visit", "最近拜访日期", "date")]
    out = pd.DataFrame(rows, columns=[*[c.key for c in cols], "key"])
    out = out.sort_values(["visits_ytd", "key"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return Table("visits_customer", "客户拜访（按客户）", cols, out.drop(columns=["key"]), html_rows=15,
                 note="审批中和已通过的客户拜访计划，按拜访日期统计（不含尚未到来的拜访）。")


# ---------------------------------------------------------------- top customers
def top_customers(data: ReportData, periods: Periods, names: Names, top_n: int) -> Table:
    deals = _need(data, "deal", ["stage", "contract_amount", "close_date", "company_id"])
    won = deals[deals["stage"].isin(WON_STAGES)]
    keys = _str_keys(won["company_id"]).fillna("")
    cur = within(won["close_date"], periods.ytd).to_numpy()
    prev = within(won["close_date"], periods.ytd_prev).to_numpy()
    amount = won["contract_amount"].fillna(0.0).to_numpy()
    frame = pd.DataFrame({"key": keys.to_numpy(), "ytd": np.where(cur, amount, 0.0), "count": cur.astype(int),
                          "prev": np.where(prev, amount, 0.0)})
    grouped = frame.groupby("key", sort=False).sum()
    grouped = grouped[grouped["ytd"] > 0].reset_index()
    grouped = grouped.sort_values(["ytd", "key"], ascending=[False, True], kind="stable").head(top_n)
    rows = [{"rank": i + 1, "customer": names.customer(r.key or None), "won_amount": _yuan(r.ytd),
             "won_deals": int(r.count), "prev_amount": _yuan(r.prev), "change": _change(r.ytd, r.prev)}
            for i, r in enumerate(grouped.itertuples(index=False))]
    cols = [Column("rank", "排名", "int"), Column("customer", "客户"), Column("won_amount", "本年赢单金额（元）", "cny"),
            Column("won_deals", "本年赢单数", "int"), Column("prev_amount", "上年同期赢单金额（元）", "cny"),
            Column("change", "同比", "pct")]
    return Table("top_customers", f"重点客户（本年赢单金额前 {top_n} 名）", cols,
                 pd.DataFrame(rows, columns=[c.key for c in cols]))


# ---------------------------------------------------------------- sync health
def _direction_of_stream(stream: str) -> str:
    if stream.partition(".")[2] in JOURNEY_ENTITIES:  # crm.campaign …: staged by journey_sync, not a sync
        return "journey"
    return "crm_to_oa" if stream.startswith("crm.") else "oa_to_crm" if stream.startswith("oa.") else "other"


def sync_tables(data: ReportData) -> tuple[Table, Table, Table, dict[str, Any]]:
    """Runs, lag and writes per direction; the lag is that of :mod:`bridge.sync.freshness` (not a watermark)."""
    status_rows, write_rows = [], []
    headline: dict[str, Any] = {}
    for direction, fresh in data.freshness.items():
        runs = data.runs[data.runs["direction"] == direction]
        label = DIRECTION_LABELS[direction]
        status_rows.append({
            "direction": label, "runs": len(runs), "succeeded": int((runs["status"] == "success").sum()),
            "failed": int((runs["status"] == "failed").sum()), "last_success": _local(fresh.last_success),
            "since_success": fresh.minutes_since_success, "unsent": fresh.unsent, "due": fresh.due,
            "oldest_unsent": fresh.oldest_unsent_minutes, "lag": fresh.lag_minutes,
        })
        headline[f"sync_lag_minutes_{direction}"] = fresh.lag_minutes
        headline[f"sync_oldest_unsent_minutes_{direction}"] = fresh.oldest_unsent_minutes
        totals: dict[str, int] = {}
        for counts in runs["counts"]:
            for name, value in (counts or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    totals[name] = totals.get(name, 0) + int(value)
        for name in sorted(totals):
            write_rows.append({"direction": label, "what": COUNT_LABELS.get(name, name), "code": name,
                               "total": totals[name]})
    status_cols = [
        Column("direction", "方向"), Column("runs", "运行次数", "int"), Column("succeeded", "成功", "int"),
        Column("failed", "失败", "int"), Column("last_success", "最近成功完成", "datetime"),
        Column("since_success", "距今（分钟）", "minutes"), Column("unsent", "待发送变更", "int"),
        Column("due", "其中已到发送时间", "int"), Column("oldest_unsent", "最早待发送变更已等待（分钟）", "minutes"),
        Column("lag", "同步滞后（分钟）", "minutes")]
    status = Table("sync_status", "同步运行状况（近24小时）", status_cols,
                   pd.DataFrame(status_rows, columns=[c.key for c in status_cols]),
                   note="同步滞后 = 距最近一次成功运行的分钟数与最早一条待发送变更已等待的分钟数中的较大者；"
                        "变更通常只等待 1～2 分钟（防抖）。最近成功完成为空表示该方向从未成功运行，请联系系统管理员。")
    writes = Table("sync_writes", "同步写入量（近24小时）", [
        Column("direction", "方向"), Column("what", "项目"), Column("code", "代码"), Column("total", "合计", "int")],
        pd.DataFrame(write_rows, columns=["direction", "what", "code", "total"]))
    wm = data.watermarks
    stream_rows = [{"stream": r.stream, "direction": DIRECTION_LABELS.get(_direction_of_stream(r.stream), "其他"),
                    "watermark": _local(from_ms(r.value_ms)), "updated_at": _local(r.updated_at)}
                   for r in wm.itertuples(index=False)]
    stream_cols = [Column("stream", "数据流"), Column("direction", "方向"),
                   Column("watermark", "已读取至（源系统修改时间）", "datetime"),
                   Column("updated_at", "水位线更新于", "datetime")]
    streams_t = Table("sync_watermarks", "各数据流水位线", stream_cols,
                      pd.DataFrame(stream_rows, columns=[c.key for c in stream_cols]),
                      note="水位线是同步已安全读取到的源系统最后修改时间。某类记录长时间无人修改时水位线停在原处，"
                           "这不是同步滞后；滞后请看上表。")
    return status, writes, streams_t, headline


def quarantine_table(data: ReportData) -> tuple[Table, int]:
    q = data.quarantine
    built = data.built_at
    rows = []
    if len(q):
        grouped = q.groupby("reason_code", sort=True).agg(open=("open", "sum"), oldest=("oldest", "min"))
        for code, r in grouped.iterrows():
            oldest = r["oldest"]
            rows.append({"reason": REASON_LABELS.get(str(code), str(code)), "code": str(code), "open": int(r["open"]),
                         "oldest": _local(oldest),
                         "age_days": round((built - pd.Timestamp(oldest).to_pydatetime()).total_seconds() / 86400, 1)})
    frame = pd.DataFrame(rows, columns=["reason", "code", "open", "oldest", "age_days"])
    frame = frame.sort_values(["open", "code"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table = Table("quarantine_backlog", "隔离区积压（按原因）", [
        Column("reason", "原因"), Column("code", "代码"), Column("open", "待处理", "int"),
        Column("oldest", "最早出现", "datetime"), Column("age_days", "最久积压（天）", "days")], frame,
        note="隔离区中尚未修正或释放的记录；数据责任人可在 Airflow 中数据桥的隔离区页面或用 bridge quarantine 命令处理。")
    return table, int(frame["open"].sum()) if len(frame) else 0


# ---------------------------------------------------------------- data health
def health_tables(data: ReportData, periods: Periods, labels: Labels) -> tuple[Table, pd.DataFrame, dict[str, Any]]:
    h = data.health.copy()
    if len(h):
        h["day"] = pd.to_datetime(h["day"]).dt.date
    days = pd.date_range(_ts(periods.trailing30.start), _ts(periods.report_day), freq="D").date
    overall = h[h["scope_type"] == "overall"] if len(h) else h
    by_day = dict(zip(overall["day"], overall["score"], strict=True)) if len(overall) else {}
    trend = pd.DataFrame({"day": days, "score": [by_day.get(d) for d in days]})
    rows = []
    latest_day = max(h["day"]) if len(h) else None
    if latest_day is not None:
        week_ago = latest_day - timedelta(days=7)
        latest = h[h["day"] == latest_day]
        before = {(r.scope_type, r.scope): r.score for r in h[h["day"] == week_ago].itertuples(index=False)}
        order = {"overall": 0, "entity": 1, "department": 2, "data_owner": 3}
        latest = latest.assign(_o=latest["scope_type"].map(order).fillna(9)).sort_values(["_o", "score", "scope"])
        for r in latest.itertuples(index=False):
            scope = str(r.scope)
            if r.scope_type == "entity":
                scope = labels.entities.get(scope, scope)
            elif r.scope_type == "department":
                scope = labels.departments.get(scope, scope)
            elif r.scope_type == "overall":
                scope = "全部数据"
            prev = before.get((r.scope_type, r.scope))
            rows.append({"scope_type": SCOPE_LABELS.get(str(r.scope_type), str(r.scope_type)), "scope": scope,
                         "score": round(float(r.score), 1),
                         "week_change": None if prev is None else round(float(r.score) - float(prev), 1)})
    cols = [Column("scope_type", "范围"), Column("scope", "对象"), Column("score", "健康分（0–100）", "score"),
            Column("week_change", "较7天前", "score")]
    note = (f"数据健康检查（每日 07:00）最近一次结果：{latest_day:%Y-%m-%d}。" if latest_day is not None
            else "尚无数据健康检查结果（data_health DAG 尚未运行）。")
    table = Table("health_scores", "数据健康分", cols, pd.DataFrame(rows, columns=[c.key for c in cols]), note=note)
    head = {"health_score": round(float(by_day[latest_day]), 1) if latest_day in by_day else None,
            "health_day": latest_day.isoformat() if latest_day else None}
    return table, trend, head


# ---------------------------------------------------------------- all of it
def build_marts(data: ReportData, periods: Periods, labels: Labels, names: Names, *, top_n: int = 10,
                lookup_deal_names: Callable[[Sequence[str]], Mapping[str, str]] | None = None) -> Marts:
    """Every table of the report, grouped in sections; a section whose fields are hidden says so."""
    assembly = _Assembly(data, periods, labels, names, top_n, lookup_deal_names)
    sections = [assembly.section(key, title, intro, make) for key, title, intro, make in _SECTIONS]
    return Marts(sections=sections, headline=assembly.headline, series=assembly.series)


@dataclass
class _Assembly:
    """What the sections are built from, and the headline figures and chart series they add to."""

    data: ReportData
    periods: Periods
    labels: Labels
    names: Names
    top_n: int
    lookup_deal_names: Callable[[Sequence[str]], Mapping[str, str]] | None
    headline: dict[str, Any] = field(default_factory=dict)
    series: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headline.update(
            as_of=self.periods.as_of.isoformat(), report_day=self.periods.report_day.isoformat()
        )

    def section(
        self, key: str, title: str, intro: str, make: Callable[[_Assembly, Section], None]
    ) -> Section:
        sec = Section(key, title, intro)
        try:
            make(self, sec)
        except HiddenFields as exc:
            labels = self.labels
            fields = "、".join(labels.field_labels.get((exc.entity, f), f) for f in exc.fields)
            sec.notes.append(f"本节需要的字段（{labels.entities.get(exc.entity, exc.entity)}：{fields}）"
                             f"按权限策略对{self.data.role_label}不可见，本节从略。")
        return sec

    def archived_deals(self, sec: Section) -> None:
        """Archived deals are left out of every deal figure (new, won, pipeline, contracts); say how many."""
        n = self.data.archived.get("deal", 0)
        self.headline["archived_deals"] = n
        if n:
            sec.notes.append(ARCHIVED_DEALS_NOTE.format(n=n))

    def sales(self, sec: Section) -> None:
        new_t, won_t, head = deal_period_tables(self.data, self.periods)
        self.headline.update(head)
        self.archived_deals(sec)
        self.series["won_trend"] = won_trend(self.data, self.periods)
        sec.tables += [won_t, new_t]
        sec.chart_keys.append("won_trend")

    def pipeline(self, sec: Section) -> None:
        labels = self.labels
        stage_t = pipeline_by_stage(self.data, labels)
        open_rows = stage_t.frame[stage_t.frame["stage"].isin([labels.stages[s] for s in labels.stages
                                                                if s not in CLOSED_STAGES])]
        self.headline["open_pipeline_amount"] = round(float(open_rows["amount"].sum()), 2)
        self.headline["open_pipeline_deals"] = int(open_rows["deals"].sum())
        sec.tables.append(stage_t)
        sec.chart_keys.append("pipeline_stage")
        sec.tables.append(pipeline_by_owner(self.data, labels, self.names))
        self.archived_deals(sec)

    def contracts(self, sec: Section) -> None:
        summary, exceptions, head = contracts_vs_approvals(self.data, self.periods, self.labels, self.names,
                                                           self.lookup_deal_names)
        self.headline.update(head)
        sec.tables += [summary, exceptions]

    def cycles(self, sec: Section) -> None:
        sec.tables.append(approval_cycles(self.data, self.periods, self.labels))
        sec.chart_keys.append("approval_cycle")

    def spend(self, sec: Section) -> None:
        names, projects = self.names, project_names(self.data)
        by_customer = ExpenseView("customer_id", "费用与差旅（按客户）", "expense_customer",
                                  lambda k: names.customer(k or None), "客户")
        by_project = ExpenseView("project_no", "费用与差旅（按项目）", "expense_project", lambda k: k or NO_PROJECT,
                                 "项目编号", extra=lambda k: projects.get(k, ""), extra_label="项目名称")
        sec.tables += [expenses_by(self.data, self.periods, by_customer),
                       expenses_by(self.data, self.periods, by_project)]

    def visits(self, sec: Section) -> None:
        sec.tables.append(visits_by_customer(self.data, self.periods, self.names))

    def customers(self, sec: Section) -> None:
        sec.tables.append(top_customers(self.data, self.periods, self.names, self.top_n))

    def sync(self, sec: Section) -> None:
        status, writes, streams, head = sync_tables(self.data)
        self.headline.update(head)
        backlog, open_count = quarantine_table(self.data)
        self.headline["quarantine_open"] = open_count
        sec.tables += [status, writes, streams, backlog]

    def health(self, sec: Section) -> None:
        table, trend, head = health_tables(self.data, self.periods, self.labels)
        self.headline.update(head)
        self.series["health_trend"] = trend
        sec.tables.append(table)
        sec.chart_keys.append("health_trend")


_SECTIONS: tuple[tuple[str, str, str, Callable[[_Assembly, Section], None]], ...] = (
    ("sales", "销售业绩", "新增商机与赢单，对比上一期、上月同期和上年同期。", _Assembly.sales),
    ("pipeline", "销售漏斗", "当前全部商机按阶段和负责人分布。", _Assembly.pipeline),
    ("contracts", "签约与立项审批", "已签约商机在 OA 中的立项审批状态。", _Assembly.contracts),
    ("approvals", "审批周期", "各类 OA 审批从提交到决定的用时。", _Assembly.cycles),
    ("spend", "费用与差旅", "已通过的费用报销和差旅申请，按客户和项目汇总。", _Assembly.spend),
    ("visits", "客户拜访", "客户拜访计划，按客户汇总。", _Assembly.visits),
    ("customers", "重点客户", "本年赢单金额最高的客户。", _Assembly.customers),
    ("sync", "系统同步状况", "CRM 与 OA 双向同步的运行、滞后、写入量和隔离区积压。", _Assembly.sync),
    ("health", "数据健康", "数据健康检查的得分及近30天趋势。", _Assembly.health),
)


def project_names(data: ReportData) -> dict[str, str]:
    """项目编号 → 项目名称 from the 立项申请 snapshots (latest instance per number)."""
    pi = data.frames.get("project_initiation")
    if pi is None or not {"project_no", "project_name"} <= set(pi.columns):
        return {}
    known = pi[pi["project_no"].notna() & pi["project_name"].notna()]
    if "created_at" in known.columns:
        known = known.sort_values("created_at", kind="stable")
    return {str(k): str(v) for k, v in zip(known["project_no"], known["project_name"], strict=True)}
