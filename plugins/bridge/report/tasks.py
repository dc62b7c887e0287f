"""What the ``daily_report`` DAG's tasks do (the DAG file stays thin).

``build`` reads the settings, the data dictionary and the permission policy,
asks the CRM for owner names, builds the day's files and records them.
``send`` mails the built message once per day: a retry or a manual rerun of
the same day rebuilds the files but does not mail them again, unless the run
is triggered with ``{"resend": true}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from bridge import settings
from bridge.report import timetable
from bridge.workdays import CalendarSettingsError, WorkCalendar, load_calendar

log = logging.getLogger(__name__)

OwnersFetch = Callable[[], Sequence[Mapping[str, Any]]]


def _mail_list(value: Any, where: str) -> list[str]:
    recipients = value or []
    if isinstance(recipients, str):
        recipients = [r.strip() for r in recipients.replace(";", ",").split(",") if r.strip()]
    if not isinstance(recipients, list) or not all(isinstance(r, str) and "@" in r for r in recipients):
        raise settings.SettingsError(f"include/settings.yaml {where} 必须是邮箱列表，如 [boss@example.com]")
    return list(recipients)


def _editions(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The main edition (``report.recipients``; ``audience: None`` = the policy's ``audiences.report.daily_report``)
    then each of ``report.editions`` (one per audience role, e.g. ``{audience: hr, recipients: [hr@example.com]}``)."""
    out: list[dict[str, Any]] = [{"audience": None,
                                  "recipients": _mail_list(section.get("recipients"), "report.recipients")}]
    raw = section.get("editions")
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise settings.SettingsError("include/settings.yaml report.editions 必须是列表，如 "
                                     "[{audience: hr, recipients: [hr@example.com]}]")
    for i, e in enumerate(raw):
        where = f"report.editions[{i}]"
        if not isinstance(e, Mapping) or not isinstance(e.get("audience"), str) or not e["audience"]:
            raise settings.SettingsError(f"include/settings.yaml {where} 须写明 audience（permissions.yaml 的角色，"
                                         "如 management、hr）和 recipients")
        if any(o["audience"] == e["audience"] for o in out):
            raise settings.SettingsError(f"include/settings.yaml {where}: 受众 {e['audience']} 重复，每个角色只能有一版")
        out.append({"audience": e["audience"], "recipients": _mail_list(e.get("recipients"), f"{where}.recipients")})
    return out


def resolve_editions(editions: Sequence[Mapping[str, Any]], main: str) -> list[dict[str, Any]]:
    """Editions by role, the main one (``main`` = the policy's report audience) first: ``report.recipients`` and a
    ``report.editions`` entry for the main role are one edition, their lists joined."""
    merged: dict[str, list[str]] = {}
    for e in editions:
        role = e["audience"] or main
        merged[role] = list(dict.fromkeys([*merged.get(role, []), *e["recipients"]]))
    return [{"audience": role, "recipients": merged[role]}
            for role in sorted(merged, key=lambda r: r != main)]


def report_settings(raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``report`` section of include/settings.yaml with defaults and checks."""
    section = dict((raw if raw is not None else settings.load()).get("report") or {})
    editions = _editions(section)
    top = section.get("top_customers", 10)
    if not isinstance(top, int) or top < 1:
        raise settings.SettingsError("include/settings.yaml report.top_customers 必须是正整数")
    return {"timezone": str(section.get("timezone") or timetable.REPORT_TZ),
            "recipients": list(editions[0]["recipients"]), "editions": editions, "top_customers": top, "ui_url": section.get("ui_url")}


def day_of_run(context: Mapping[str, Any], tz: str) -> date:
    """The report day: the ``day`` param when given (rebuild a past day), else the run's date in ``tz``."""
    params = context.get("params") or {}
    if params.get("day"):
        return date.fromisoformat(str(params["day"]))
    logical = context.get("logical_date") or (context.get("dag_run") and context["dag_run"].run_after)
    if logical is None:
        logical = datetime.now(UTC)
    return timetable.report_day(logical, tz)


def skip_reason(day: date, calendar: WorkCalendar, run_type: str | None) -> str | None:
    """Why a scheduled run makes no report: its day became a day off after it was planned. Manual runs build."""
    if run_type == "scheduled" and not calendar.is_workday(day):
        return (f"{day} is not a working day (include/settings.yaml calendar or the holiday calendar): no report. "
                "Trigger the DAG by hand to build it anyway.")
    return None


def working_calendar(notes: list[str]) -> WorkCalendar:
    """The deployment's calendar; a broken ``calendar:`` section is a note in the report, not a failed run."""
    try:
        return load_calendar()
    except (CalendarSettingsError, settings.SettingsError) as exc:
        log.error("report: the calendar settings cannot be used (%s); holidays only, no company days", exc)
        notes.append(f"工作日历配置有误（{exc}），本报告的“昨日”按法定节假日与调休计算，未含公司自定安排。")
        return WorkCalendar()


def crm_owners() -> list[dict[str, Any]]:
    from bridge.hooks.crm import CrmHook

    return CrmHook().owners()


def remember_owner_names(owners: Sequence[Mapping[str, Any]]) -> None:
    """Keep the owners' names in the hub for the bridge's pages (a nicety: never stops the report)."""
    from bridge import people
    from bridge.hub import engine as hub_engine

    try:
        with hub_engine.ensure_schema().begin() as conn:
            people.remember_crm_owners(conn, owners)
    except Exception as exc:
        log.warning("report: owner names not stored in the hub (%s: %s)", type(exc).__name__, exc)


def run_build(context: Mapping[str, Any], *, owners_fetch: OwnersFetch | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    from bridge import dictionary as bridge_dictionary
    from bridge import permissions
    from bridge.hub import engine as hub_engine
    from bridge.report.build import ReportRequest, build_report, owner_names

    cfg = report_settings()
    day = day_of_run(context, cfg["timezone"])
    dag_run = context.get("dag_run")
    run_type = str(getattr(dag_run, "run_type", "") or "").lower().split(".")[-1] or None
    notes: list[str] = []
    calendar = working_calendar(notes)
    reason = skip_reason(day, calendar, run_type)
    if reason:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(reason)
    try:
        raw_owners = (owners_fetch or crm_owners)()
        owners = owner_names(raw_owners)
        remember_owner_names(raw_owners)
    except Exception as exc:  # owner names are a nicety: the report still goes out with owner ids
        log.warning("report: CRM owners unavailable (%s: %s); showing owner ids", type(exc).__name__, exc)
        owners = {}
        notes.append("CRM 负责人名单暂时无法读取，负责人以编号显示。")
    policy, hub = permissions.load(), hub_engine.ensure_schema()
    out: dict[str, Any] = {"day": day.isoformat(), "editions": []}
    for i, edition in enumerate(resolve_editions(cfg["editions"], policy.audience("report", "daily_report"))):
        built = build_report(hub, bridge_dictionary.load(), policy, ReportRequest(
            report_day=day, owners=owners, recipients=edition["recipients"], calendar=calendar,
            top_n=cfg["top_customers"], run_id=str(context.get("run_id") or "manual"), built_at=now, notes=notes,
            ui_url=cfg.get("ui_url"), audience=edition["audience"]))
        files = {k: str(built.paths[k]) for k in ("html", "xlsx", "eml")}
        if i == 0:  # the main edition, as before editions existed
            out.update(files, recipients=built.recipients, figures=built.figures,
                       seconds=round(built.timings.get("total", 0.0), 2))
        else:
            out["editions"].append({"audience": edition["audience"], "recipients": built.recipients, **files})
    return out


def run_send(built: Mapping[str, Any], context: Mapping[str, Any], *, smtp_conn_id: str = "smtp_default",
             now: datetime | None = None) -> dict[str, Any]:
    """Mail the main edition, then each other edition to its own list; each once per day unless ``resend``."""
    from bridge.hub import engine as hub_engine
    from bridge.report import archive

    day = date.fromisoformat(str(built["day"]))
    resend = bool((context.get("params") or {}).get("resend"))
    hub = hub_engine.ensure_schema()
    with hub.connect() as conn:
        record = archive.get_report(conn, day)
    if record is None:
        raise RuntimeError(f"report_run has no row for {day}: the build task did not record it")
    result = _send_one(hub, day, (None, record.sent_at), built, resend, smtp_conn_id, now)
    with hub.connect() as conn:
        sent = {e.audience: e.sent_at for e in archive.editions(archive.get_report(conn, day))}
    result["editions"] = [_send_one(hub, day, (e["audience"], sent.get(e["audience"])), e, resend, smtp_conn_id, now)
                          for e in built.get("editions") or []]
    return result


def _send_one(hub: Any, day: date, edition: tuple[str | None, datetime | None], built: Mapping[str, Any],
              resend: bool, smtp_conn_id: str, now: datetime | None) -> dict[str, Any]:
    """Mail one edition (``edition`` = its audience, None for the main one, and when it was mailed)."""
    from bridge.report import archive, delivery

    audience, sent_before = edition
    recipients = list(built["recipients"])
    out: dict[str, Any] = {"day": day.isoformat(), "audience": audience, "recipients": recipients}
    if sent_before is not None and not resend:
        log.info("report %s (%s) was already mailed at %s; not sending again (trigger with resend=true to force)",
                 day, audience or "main", sent_before)
        return {**out, "sent": False, "sent_at": sent_before.isoformat()}
    if audience is not None and not recipients:
        log.warning("report %s: edition %s has no recipients; built, not mailed", day, audience)
        return {**out, "sent": False, "sent_at": None}
    eml = Path(str(built["eml"]))
    message = BytesParser(_class=EmailMessage, policy=email_policy.default).parsebytes(eml.read_bytes())
    delivery.send(message, recipients, smtp_conn_id)
    sent_at = now or datetime.now(UTC)
    archive.write_atomic(eml, bytes(message))
    with hub.begin() as conn:
        if audience is None:
            archive.mark_sent(conn, day, recipients, sent_at)
        else:
            archive.mark_edition_sent(conn, day, audience, recipients, sent_at)
    return {**out, "sent": True, "sent_at": sent_at.isoformat()}
