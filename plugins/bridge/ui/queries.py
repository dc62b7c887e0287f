"""What the pages read from the hub (read-only, SQLAlchemy Core).

Quarantine, run summaries and releases go through ``bridge.hub.store``; the
few reads the store has no function for (all watermarks, report runs, health
scores, migration runs, filter choices) live here. Rows are returned as small
dataclasses so the templates never touch SQLAlchemy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, make_url, or_, select
from sqlalchemy.exc import DBAPIError, OperationalError

from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import (
    audit_log,
    health_result,
    health_score,
    migration_run,
    quarantine,
    report_run,
    run_summary,
    snapshot,
    watermark,
)
from bridge.quality.scores import HealthScore


class HubUnavailable(RuntimeError):
    """The hub cannot be used by the pages; ``message`` says what is wrong and what to do (Chinese)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


_head_lock = threading.Lock()
_head: list[tuple[str, frozenset[str]]] = []


def _revisions() -> tuple[str, frozenset[str]]:
    """The code's head revision and known revisions (read once per process)."""
    with _head_lock:
        if not _head:
            _head.append((hub_engine.head_revision(), frozenset(hub_engine.known_revisions())))
        return _head[0]


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def check_hub(engine: Engine) -> None:
    """Raise :class:`HubUnavailable` unless the hub answers and is at the code's revision."""
    where = hub_engine.masked(engine.url)
    head, known = _revisions()
    try:
        current = hub_engine.current_revision(engine)
    except (OperationalError, DBAPIError) as exc:
        raise HubUnavailable(
            f"无法连接中枢库 {where}。请确认数据库已启动，并检查 Airflow Connection bridge_hub"
            "（或环境变量 AIRFLOW_CONN_BRIDGE_HUB）的地址、账号和密码。",
            _reason(exc),
        ) from exc
    if current is None:
        raise HubUnavailable(
            f"中枢库 {where} 尚未初始化（没有任何表）。请运行 `bridge hub upgrade`"
            "（docker-compose 部署由 airflow-init 容器执行），完成后刷新本页。"
        )
    if current not in known:
        raise HubUnavailable(
            f"中枢库 {where} 的结构版本 {current} 是更新版本的程序迁移的，当前程序（最新 {head}）不认识。"
            "请部署迁移它的那个版本，或用那个版本回退中枢库。"
        )
    if current != head:
        raise HubUnavailable(
            f"中枢库 {where} 的结构版本为 {current}，当前程序需要 {head}。请运行 `bridge hub upgrade` 后刷新本页。"
        )


def server_hub_url(conn_id: str = hub_engine.DEFAULT_CONN_ID) -> str:
    """The hub URL as the API server sees it (``hub_url`` uses the server-side lookup there)."""
    return hub_engine.hub_url(conn_id)


def check_sqlite_file(url: str) -> None:
    """Raise :class:`HubUnavailable` when a SQLite hub file does not exist (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).exists():
        raise HubUnavailable(
            f"中枢库文件 {parsed.database} 不存在：中枢库尚未初始化。请运行 `bridge hub upgrade`"
            "（或任一同步任务运行一次），并确认 Airflow Connection bridge_hub 指向正确的文件，完成后刷新本页。"
        )


# ---------------------------------------------------------------- sync status


@dataclass(frozen=True)
class WatermarkRow:
    stream: str
    value_ms: int
    updated_at: datetime
    run_id: str | None

    @property
    def direction(self) -> str:
        """``crm`` / ``oa``: the system the stream reads from (``crm.deal`` → ``crm``)."""
        return self.stream.split(".", 1)[0]


def watermarks(conn: Connection) -> list[WatermarkRow]:
    rows = conn.execute(select(watermark).order_by(watermark.c.stream))
    return [WatermarkRow(r.stream, int(r.value_ms), r.updated_at, r.run_id) for r in rows
            if store.is_time_stream(r.stream)]


def latest_run_per_kind(conn: Connection) -> dict[str, store.RunSummary]:
    """The newest run summary of each kind (crm_to_oa, oa_to_crm, migration, …)."""
    kinds = [k for (k,) in conn.execute(select(run_summary.c.kind).distinct().order_by(run_summary.c.kind))]
    latest: dict[str, store.RunSummary] = {}
    for kind in kinds:
        runs = store.recent_runs(conn, kind=kind, limit=1)
        if runs:
            latest[kind] = runs[0]
    return latest


def last_success(conn: Connection, kind: str) -> datetime | None:
    value = conn.execute(
        select(func.max(run_summary.c.finished_at)).where(
            run_summary.c.kind == kind, run_summary.c.status == "success"
        )
    ).scalar()
    return value if isinstance(value, datetime) else None


# ---------------------------------------------------------------- quarantine


@dataclass(frozen=True)
class QuarantineFacets:
    """Values the filters offer (from every entry, open or not)."""

    reasons: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)


def _distinct(conn: Connection, column: Any, limit: int = 300) -> list[str]:
    rows = conn.execute(select(column).distinct().where(column.is_not(None)).order_by(column).limit(limit))
    return [str(v) for (v,) in rows]


def quarantine_facets(conn: Connection) -> QuarantineFacets:
    return QuarantineFacets(
        reasons=_distinct(conn, quarantine.c.reason_code),
        entities=_distinct(conn, quarantine.c.entity),
        departments=_distinct(conn, quarantine.c.department),
        owners=_distinct(conn, quarantine.c.data_owner),
    )


# ---------------------------------------------------------------- reports


@dataclass(frozen=True)
class ReportRun:
    day: date
    run_id: str
    built_at: datetime
    html_path: str
    xlsx_path: str
    recipients: list[str]
    sent_at: datetime | None
    figures: dict[str, Any]


def _report(m: RowMapping) -> ReportRun:
    recipients = m.get("recipients") or []
    return ReportRun(
        day=m["day"],
        run_id=m["run_id"],
        built_at=m["built_at"],
        html_path=m["html_path"] or "",
        xlsx_path=m["xlsx_path"] or "",
        recipients=[str(r) for r in recipients] if isinstance(recipients, list) else [str(recipients)],
        sent_at=m.get("sent_at"),
        figures=dict(m.get("figures") or {}),
    )


def report_runs(conn: Connection, limit: int = 90) -> list[ReportRun]:
    rows = conn.execute(select(report_run).order_by(report_run.c.day.desc()).limit(limit))
    return [_report(r._mapping) for r in rows]


def get_report_run(conn: Connection, day: date) -> ReportRun | None:
    row = conn.execute(select(report_run).where(report_run.c.day == day)).first()
    return _report(row._mapping) if row is not None else None


# ---------------------------------------------------------------- data health


def health_scores(conn: Connection, since: date) -> list[HealthScore]:
    """Every score since ``since``, by scope and then by day (the data-health trend)."""
    rows = conn.execute(
        select(health_score)
        .where(health_score.c.day >= since)
        .order_by(health_score.c.scope_type, health_score.c.scope, health_score.c.day)
    )
    return [
        HealthScore(
            r.day,
            r.scope_type,
            r.scope,
            float(r.score),
            int(r.checks),
            int(r.failed_checks),
            int(r.evaluated),
            int(r.failed_rows),
            r.run_id,
        )
        for r in rows
    ]


def latest_health_day(conn: Connection) -> date | None:
    value = conn.execute(select(func.max(health_score.c.day))).scalar()
    return value if isinstance(value, date) else None


@dataclass(frozen=True)
class FailedCheck:
    suite: str
    expectation: str
    entity: str
    field: str | None
    department: str | None
    evaluated: int
    failed: int


def failed_checks(conn: Connection, day: date, limit: int = 200) -> list[FailedCheck]:
    rows = conn.execute(
        select(health_result)
        .where(health_result.c.day == day, health_result.c.success.is_(False))
        .order_by(health_result.c.failed.desc(), health_result.c.id)
        .limit(limit)
    )
    return [
        FailedCheck(r.suite, r.expectation, r.entity, r.field, r.department, int(r.evaluated), int(r.failed))
        for r in rows
    ]


# ---------------------------------------------------------------- migration


@dataclass(frozen=True)
class MigrationRun:
    run_id: str
    params: dict[str, Any]
    status: str
    started_at: datetime
    finished_at: datetime | None
    report_html: str | None
    report_csv: str | None
    counts: dict[str, Any]

    @property
    def dry_run(self) -> bool | None:
        value = self.params.get("dry_run")
        return bool(value) if value is not None else None

    @property
    def aborted(self) -> bool:
        """Ended unfinished (teardown ``close_run``, or taken over): ``bridge.migration.runs.abort_run``."""
        return self.status == "aborted"

    @property
    def abort_reason(self) -> str | None:
        note = self.params.get("aborted")
        return str(note.get("reason") or "") or None if isinstance(note, dict) else None


def _migration(m: RowMapping) -> MigrationRun:
    return MigrationRun(
        run_id=m["run_id"],
        params=dict(m.get("params") or {}),
        status=m["status"],
        started_at=m["started_at"],
        finished_at=m.get("finished_at"),
        report_html=m.get("report_html"),
        report_csv=m.get("report_csv"),
        counts=dict(m.get("counts") or {}),
    )


def migration_runs(conn: Connection, limit: int = 100) -> list[MigrationRun]:
    rows = conn.execute(select(migration_run).order_by(migration_run.c.started_at.desc()).limit(limit))
    return [_migration(r._mapping) for r in rows]


def get_migration_run(conn: Connection, run_id: str) -> MigrationRun | None:
    row = conn.execute(select(migration_run).where(migration_run.c.run_id == run_id)).first()
    return _migration(row._mapping) if row is not None else None


# ---------------------------------------------------------------- audit of one entry

QUARANTINE_OPERATIONS = ("quarantine", "quarantine_release", "quarantine_fixed")


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    at: datetime
    principal: str
    operation: str
    outcome: str
    detail: str | None
    dag_id: str | None


def quarantine_history(
    conn: Connection, entity: str, quarantine_id: int, window: int = 50_000
) -> list[HistoryEntry]:
    """Audit entries of one quarantine entry (quarantined, fixed, released), newest first.

    Only the last ``window`` entries of the log are looked at (a primary-key
    range, cheap on a log of millions of writes): the page shows recent
    history, ``bridge audit`` the rest.
    """
    newest = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
    query = (
        select(audit_log)
        .where(
            audit_log.c.seq > int(newest) - window,
            audit_log.c.entity == entity,
            audit_log.c.operation.in_(QUARANTINE_OPERATIONS),
        )
        .order_by(audit_log.c.seq.desc())
    )
    out: list[HistoryEntry] = []
    for row in conn.execute(query):
        m = row._mapping
        ids = m["record_ids"] or {}
        if str(ids.get("quarantine_id")) == str(quarantine_id):
            out.append(
                HistoryEntry(
                    int(m["seq"]),
                    m["at"],
                    m["principal"],
                    m["operation"],
                    m["outcome"],
                    m["detail"],
                    m["dag_id"],
                )
            )
    return out


# ---------------------------------------------------------------- customers (documents page)


@dataclass(frozen=True)
class CustomerHit:
    """A CRM customer found by the documents page's search: its id and canonical record (the snapshot)."""

    crm_id: str
    record: dict[str, Any]


def find_customers(
    conn: Connection, name_part: str | None, uscc: str | None, limit: int = 50
) -> list[CustomerHit]:
    """Customers (CRM company snapshots, not deleted) whose name contains ``name_part`` or whose USCC is
    ``uscc`` (either may be None), by name. Reads the canonical record's ``name`` / ``uscc``."""
    payload = snapshot.c.payload
    matches = []
    if name_part:
        matches.append(payload["name"].as_string().contains(name_part, autoescape=True))
    if uscc:
        matches.append(payload["uscc"].as_string() == uscc)
    if not matches:
        return []
    query = (
        select(snapshot.c.source_id, payload)
        .where(snapshot.c.system == "crm", snapshot.c.entity == "company", snapshot.c.deleted.is_(False))
        .where(or_(*matches))
        .order_by(payload["name"].as_string(), snapshot.c.source_id)
        .limit(limit)
    )
    return [CustomerHit(str(r.source_id), dict(r.payload or {})) for r in conn.execute(query)]


def get_customer(conn: Connection, crm_id: str) -> CustomerHit | None:
    """One customer's snapshot by CRM id (not deleted)."""
    row = conn.execute(
        select(snapshot.c.source_id, snapshot.c.payload).where(
            snapshot.c.system == "crm",
            snapshot.c.entity == "company",
            snapshot.c.source_id == crm_id,
            snapshot.c.deleted.is_(False),
        )
    ).first()
    return CustomerHit(str(row.source_id), dict(row.payload or {})) if row is not None else None
