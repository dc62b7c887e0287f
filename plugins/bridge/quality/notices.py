"""E-mail notices (Chinese) to the owners of failing checks: per department and per data owner.

谁产生谁负责: a department gets the failing checks of the fields it owns
(``owner`` in the dictionary; its address is ``departments.<key>.email``); a
data owner (CRM owner, OA applicant) gets the failing checks that concern
their own records, with their counts and ids. Messages carry record ids,
counts, the rule and how to fix it — never a field value or a person's name.

Building messages is pure; :func:`send` delivers them through the Airflow
SMTP Connection (``smtp_default``) with the smtp provider's ``SmtpHook``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.hub.schema import quarantine
from bridge.quality.scores import HealthResult
from bridge.quality.summary import Labels

log = logging.getLogger(__name__)
NO_OWNER = "-"
Row = tuple[str, str, str, str]  # one line of a notice's table: check, count, example ids, how to fix


@dataclass(frozen=True)
class Notice:
    """One e-mail: to whom, why (department or data owner), and what it says."""

    to: str
    audience: str  # department | data_owner | ops
    scope: str  # department key, the owner ids ("70000003+u0003d699"), or "ops"; never an address
    subject: str
    html: str
    check_ids: tuple[str, ...]


@dataclass
class NoticePlan:
    notices: list[Notice] = field(default_factory=list)
    unresolved_owners: list[str] = field(default_factory=list)  # owners with failing records but no e-mail
    departments_without_email: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- who is who
def owner_directory(conn: Connection, crm_owners: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Data owner id → e-mail: CRM owner ids directly (``CrmHook.owners()``), OA user ids through ``owner_user`` links."""
    by_owner = {
        str(o["id"]): str(o["email"]).strip().lower()
        for o in crm_owners
        if o.get("id") is not None and o.get("email")
    }
    directory = dict(by_owner)
    for link in store.links(conn, "owner_user"):
        if link.oa_id and link.crm_id and link.crm_id in by_owner:
            directory.setdefault(link.oa_id, by_owner[link.crm_id])
    return directory


def owner_examples(conn: Connection, d: Dictionary, results: Sequence[HealthResult]) -> dict[tuple[str, str], list[str]]:
    """(check id, data owner) → that owner's ids among the check's kept failing ids."""
    examples: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if not r.failing_ids:
            continue
        owners: dict[str, str | None] = {}
        if r.entity in d.entities:
            system = d.entity(r.entity).system
            owners = {k: s.data_owner for k, s in store.get_snapshots(conn, system, r.entity, r.failing_ids).items()}
            if r.check_id.endswith(".link_complete") or r.check_id.endswith(".amount_consistent"):
                deals = store.get_snapshots(conn, "crm", "deal", r.failing_ids)
                owners.update({k: s.data_owner for k, s in deals.items()})
        elif r.entity == "quarantine":
            rows = conn.execute(
                select(quarantine.c.source_id, quarantine.c.data_owner).where(
                    quarantine.c.resolved_at.is_(None), quarantine.c.reason_code == r.field,
                    quarantine.c.source_id.in_(r.failing_ids),
                )
            )
            owners = {sid: owner for sid, owner in rows}
        for source_id in r.failing_ids:
            owner = owners.get(source_id)
            if owner:
                examples.setdefault((r.check_id, owner), []).append(source_id)
    return examples


def backlog_by_department(conn: Connection, reasons: Iterable[str]) -> dict[tuple[str, str], int]:
    """(reason, department) → open quarantine entries, for the backlog lines of department notices."""
    from sqlalchemy import func

    wanted = list(reasons)
    if not wanted:
        return {}
    rows = conn.execute(
        select(quarantine.c.reason_code, quarantine.c.department, func.count())
        .where(quarantine.c.resolved_at.is_(None), quarantine.c.reason_code.in_(wanted))
        .group_by(quarantine.c.reason_code, quarantine.c.department)
    )
    return {(reason, dept): int(n) for reason, dept, n in rows if dept}


# ---------------------------------------------------------------- messages
_STYLE = ("<style>body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;color:#222}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
          "th{background:#f3f4f6}.ids{font-family:monospace;font-size:12px}</style>")


def _table(rows: Sequence[Row]) -> str:
    e = html.escape
    body = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td class=ids>{e(c)}</td><td>{e(f)}</td></tr>"
                   for a, b, c, f in rows)
    return f"<table><tr><th>检查项</th><th>未通过记录</th><th>示例记录编号</th><th>如何修正</th></tr>{body}</table>"


def _page(greeting: str, intro: str, rows: Sequence[Row], day: date, footer: str) -> str:
    e = html.escape
    return (f"<html><head><meta charset='utf-8'>{_STYLE}</head><body><p>{e(greeting)}</p><p>{e(intro)}</p>"
            f"{_table(rows)}<p>{e(footer)}</p>"
            f"<p style='color:#666;font-size:12px'>数据健康检查 {day.isoformat()} · 本邮件由 OA ⇄ CRM 数据桥自动发送，"
            "只含记录编号与数量；记录内容请在 CRM / OA 中查看。检查规则见 docs/data_health.md。</p></body></html>")


FOOTER = "修正后无需回复：下次同步会带回新数据，次日 07:00 的检查会重新评分。明细见 Airflow「数据健康」页面的 Data Docs。"


@dataclass(frozen=True)
class NoticeFacts:
    """What the day's notices are planned from besides the results: the day, who gets mail, what they see."""

    day: date
    overall_score: float | None
    owner_emails: Mapping[str, str]
    examples: Mapping[tuple[str, str], list[str]]
    backlog: Mapping[tuple[str, str], int] | None = None
    ops_recipients: Sequence[str] = ()
    max_examples: int = 10

    @property
    def score(self) -> str:
        return "—" if self.overall_score is None else f"{self.overall_score:.1f}"


def plan_notices(
    results: Sequence[HealthResult], d: Dictionary, labels: Labels, facts: NoticeFacts
) -> NoticePlan:
    """The e-mails to send for the day's failing checks (pure)."""
    plan = NoticePlan()
    failing = [r for r in results if not r.success]
    _department_notices(plan, failing, d, labels, facts)
    _owner_notices(plan, failing, labels, facts)
    ops_rows = [(labels.check(r), "未通过", "、".join(r.failing_ids[:facts.max_examples]) or "—", labels.fix(r))
                for r in failing if r.entity == "sync"]
    if ops_rows:
        for address in facts.ops_recipients:
            plan.notices.append(Notice(
                to=address, audience="ops", scope="ops",
                subject=f"【数据健康】{facts.day.isoformat()} 同步时效检查未通过",
                html=_page("系统管理员：", "以下同步未在规定时间内成功运行：", ops_rows, facts.day, FOOTER),
                check_ids=tuple(r.check_id for r in failing if r.entity == "sync"),
            ))
    return plan


def _department_notices(plan: NoticePlan, failing: Sequence[HealthResult], d: Dictionary, labels: Labels,
                        facts: NoticeFacts) -> None:
    """One e-mail per department with failing fields it owns, or quarantine backlog it holds."""
    by_dept: dict[str, list[Row]] = {}
    ids_by_dept: dict[str, list[str]] = {}
    for r in failing:
        if r.department:
            by_dept.setdefault(r.department, []).append(
                (labels.check(r), f"{r.failed} / {r.evaluated}",
                 "、".join(r.failing_ids[:facts.max_examples]) or "—", labels.fix(r)))
            ids_by_dept.setdefault(r.department, []).append(r.check_id)
        elif r.entity == "quarantine":
            for (reason, dept), n in sorted((facts.backlog or {}).items()):
                if reason == r.field:
                    by_dept.setdefault(dept, []).append(
                        (labels.check(r), f"本部门待处理 {n} 条（全部 {r.evaluated} 条）", "—", labels.fix(r)))
                    ids_by_dept.setdefault(dept, []).append(r.check_id)
    day = facts.day
    for dept, rows in sorted(by_dept.items()):
        department = d.departments.get(dept)
        if department is None or not department.email:
            plan.departments_without_email.append(dept)
            continue
        plan.notices.append(Notice(
            to=department.email, audience="department", scope=dept,
            subject=f"【数据健康】{day.isoformat()} {department.label}：{len(rows)} 项检查未通过（总体评分 {facts.score}）",
            html=_page(f"{department.label}的同事：", f"今日数据健康检查中，{department.label}负责的字段有 {len(rows)} 项未通过。"
                       "请按下表核对并在源系统中修正：", rows, day, FOOTER),
            check_ids=tuple(ids_by_dept[dept]),
        ))


def _owner_notices(
    plan: NoticePlan, failing: Sequence[HealthResult], labels: Labels, facts: NoticeFacts
) -> None:
    """One message per address: a person who is both a CRM owner and an OA applicant gets one e-mail."""
    per_email: dict[str, dict[str, list[Any]]] = {}  # email -> check id -> [result, count, examples]
    ids_of_email: dict[str, set[str]] = {}
    for r in failing:
        for owner, n in sorted(r.failing_owners.items()):
            if owner == NO_OWNER or n <= 0:
                continue
            email = facts.owner_emails.get(owner)
            if not email:
                if owner not in plan.unresolved_owners:
                    plan.unresolved_owners.append(owner)
                continue
            entry = per_email.setdefault(email, {}).setdefault(r.check_id, [r, 0, []])
            entry[1] += n
            entry[2] += facts.examples.get((r.check_id, owner), [])
            ids_of_email.setdefault(email, set()).add(owner)
    for email, entries in sorted(per_email.items()):
        rows = [(labels.check(r), f"{n} 条", "、".join(own[:facts.max_examples]) or "（见部门通知）", labels.fix(r))
                for r, n, own in entries.values()]
        owner_ids = "、".join(sorted(ids_of_email[email]))
        plan.notices.append(Notice(
            to=email, audience="data_owner", scope="+".join(sorted(ids_of_email[email])),
            subject=f"【数据健康】{facts.day.isoformat()} 您负责的数据有 {len(rows)} 项检查未通过",
            html=_page("您好：", f"您作为数据责任人（编号 {owner_ids}）的记录在今日数据健康检查中有 {len(rows)} 项未通过，"
                       "请按下表在 CRM / OA 中修正：", rows, facts.day, FOOTER),
            check_ids=tuple(entries),
        ))


def notice_key(n: Notice) -> str:
    return f"{n.audience}:{n.scope}"


def send(notices: Sequence[Notice], smtp_conn_id: str = "smtp_default", skip: Iterable[str] = (),
         sent: list[str] | None = None) -> list[str]:
    """Deliver ``notices`` over the SMTP Connection; returns the keys (:func:`notice_key`) sent.

    ``skip`` holds keys already sent by an earlier try of the same run; ``sent``
    (appended to as each message goes out) lets the caller record progress
    even when a later message fails.
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    done = set(skip)
    sent = sent if sent is not None else []
    todo = [n for n in notices if notice_key(n) not in done]
    if not todo:
        return sent
    with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        for n in todo:
            hook.send_email_smtp(to=[n.to], subject=n.subject, html_content=n.html)
            sent.append(notice_key(n))
            log.info("data health notice sent: %s %s (%d checks)", n.audience, n.scope, len(n.check_ids))
    return sent
