"""The ``data_health`` DAG's task bodies: validate → publish the summary → notify the owners.

Each takes the Airflow task context (``**context``); everything between the
edges lives in the other modules of ``bridge.quality``. The day a run reports
on is the Asia/Shanghai date of its logical date (the 07:00 trigger), or of
the moment it was triggered by hand. Every task can be retried: validation
replaces the day's rows, the summary is rewritten, and notices already sent by
an earlier try of the same run are not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bridge import runkinds, settings
from bridge.context import RunContext
from bridge.hub import engine, store
from bridge.quality import config

log = logging.getLogger(__name__)
RUN_KIND = runkinds.DATA_HEALTH


def run_time(context: Mapping[str, Any]) -> datetime:
    """The logical date of the run, else when it was triggered, else now (aware, UTC)."""
    for candidate in (context.get("logical_date"), getattr(context.get("dag_run"), "run_after", None)):
        if isinstance(candidate, datetime):
            return candidate if candidate.tzinfo else candidate.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _hub(hub_url: str | None = None) -> Any:
    return engine.ensure_schema(hub_url)


def validate(context: Mapping[str, Any], *, hub_url: str | None = None, now: datetime | None = None,
             data_dir: Path | None = None) -> dict[str, Any]:
    """Run every suite over the hub, store results and scores, rebuild the Data Docs."""
    import bridge.dictionary
    from bridge.quality.run import HealthOutput, business_day, run_checks

    ctx = RunContext.from_airflow(context)
    hub = _hub(hub_url)
    day = business_day(run_time(context))
    with hub.begin() as conn:
        run_pk = store.start_run(conn, ctx, RUN_KIND)
    try:
        run = run_checks(hub, day=day, run_id=ctx.run_id or "local", now=now, dictionary=bridge.dictionary.load(),
                         cfg=config.load(), output=HealthOutput(data_dir=data_dir))
    except Exception as exc:
        with hub.begin() as conn:
            store.finish_run(conn, run_pk, "failed", {}, message=f"{exc.__class__.__name__}: {exc}"[:2000])
        raise
    counts = {
        "checks": len(run.outcomes),
        "failed_checks": len(run.failing),
        "overall_score": run.overall,
        "seconds": run.seconds,
        "rows": {c.frame: c.rows for c in run.costs},
    }
    with hub.begin() as conn:
        store.finish_run(conn, run_pk, "success", counts)
    return {
        "day": day.isoformat(),
        "overall_score": run.overall,
        "checks": len(run.outcomes),
        "failed_checks": len(run.failing),
        "data_docs": str(run.docs_index) if run.docs_index else None,
        "seconds": run.seconds,
    }


def publish(context: Mapping[str, Any], outcome: Mapping[str, Any], *, hub_url: str | None = None,
            data_dir: Path | None = None) -> dict[str, Any]:
    """Write the day's ``summary.json`` / ``summary.html`` (the UI page and the report read them)."""
    import bridge.dictionary
    from bridge.quality.summary import write_summary

    day = date.fromisoformat(str(outcome["day"]))
    with _hub(hub_url).connect() as conn:
        json_path, html_path = write_summary(conn, bridge.dictionary.load(), day, data_dir or settings.data_dir(),
                                             config.load())
    return {"day": day.isoformat(), "summary_json": str(json_path), "summary_html": str(html_path)}


def crm_owners() -> list[dict[str, Any]]:
    """CRM owners (id, e-mail) from ``CrmHook.owners()``; empty (and a warning) when the CRM cannot be read."""
    from bridge.hooks import CrmHook

    try:
        return CrmHook().owners()
    except Exception as exc:  # no owner e-mails: the department notices still go out
        log.warning("data health: CRM owners could not be read (%s: %s); only department notices will be sent",
                    exc.__class__.__name__, str(exc)[:300])
        return []


def _already_sent(conn: Any, run_id: str | None) -> list[str]:
    sent: list[str] = []
    for run in store.recent_runs(conn, RUN_KIND, limit=100):
        if run.run_id == run_id and run.task_id == "notify_owners":
            sent += [str(k) for k in run.counts.get("sent") or []]
    return sent


def notify(context: Mapping[str, Any], outcome: Mapping[str, Any], *, hub_url: str | None = None,
           owners: Sequence[Mapping[str, Any]] | None = None, smtp_conn_id: str = "smtp_default") -> dict[str, Any]:
    """E-mail each department and data owner their failing checks.

    ``owners`` are CRM owner objects (``id``, ``email``); None reads them with
    ``CrmHook.owners()``. Turned off by ``data_health.notify: false`` or the
    run's ``notify`` param.
    """
    import bridge.dictionary
    from bridge.quality import notices
    from bridge.quality.scores import failing_checks, latest_scores
    from bridge.quality.summary import Labels

    cfg = config.load()
    params = context.get("params") or {}
    if not cfg.notify or params.get("notify") is False:
        log.info("data health: notices turned off (settings data_health.notify or the run's notify param)")
        return {"sent": 0, "skipped": True}
    ctx = RunContext.from_airflow(context)
    d = bridge.dictionary.load()
    day = date.fromisoformat(str(outcome["day"]))
    hub = _hub(hub_url)
    with hub.connect() as conn:
        results = failing_checks(conn, day)
        if not results:
            return {"sent": 0, "skipped": False, "failing_checks": 0}
        overall = latest_scores(conn, "overall", day)
        directory = notices.owner_directory(conn, crm_owners() if owners is None else owners)
        examples = notices.owner_examples(conn, d, results)
        backlog = notices.backlog_by_department(conn, [r.field or "" for r in results if r.entity == "quarantine"])
        already = _already_sent(conn, ctx.run_id)
    facts = notices.NoticeFacts(
        day=day,
        overall_score=overall[0].score if overall else None,
        owner_emails=directory,
        examples=examples,
        backlog=backlog,
        ops_recipients=cfg.ops_recipients,
        max_examples=cfg.notice_examples,
    )
    plan = notices.plan_notices(results, d, Labels.of(d, cfg), facts)
    with hub.begin() as conn:
        run_pk = store.start_run(conn, ctx, RUN_KIND)
    sent: list[str] = []
    counts: dict[str, Any] = {"planned": len(plan.notices), "unresolved_owners": len(plan.unresolved_owners),
                              "departments_without_email": plan.departments_without_email}
    try:
        notices.send(plan.notices, smtp_conn_id=smtp_conn_id, skip=already, sent=sent)
    except Exception as exc:
        with hub.begin() as conn:
            store.finish_run(conn, run_pk, "failed", {**counts, "sent": already + sent},
                             message=f"{exc.__class__.__name__}: {exc}"[:2000])
        raise
    with hub.begin() as conn:
        store.finish_run(conn, run_pk, "success", {**counts, "sent": already + sent})
    if plan.unresolved_owners:
        log.warning("data health: %d data owners have failing records but no known e-mail (CRM owners / "
                    "owner_user links): %s", len(plan.unresolved_owners), ", ".join(plan.unresolved_owners[:20]))
    return {"sent": len(sent), "already_sent": len(already), "planned": len(plan.notices),
            "unresolved_owners": len(plan.unresolved_owners), "skipped": False}
