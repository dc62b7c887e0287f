"""Where reports are kept: files by date and one ``report_run`` row per day.

Files: ``<BRIDGE_DATA_DIR>/reports/<YYYY-MM-DD>/daily_report_<day>.html`` (self-
contained: charts inline), ``.xlsx`` (the tables) and ``.eml`` (the mail as
sent, when it was sent). A rebuild of the same day replaces the files
atomically (write to a temporary name, then rename), so a reader never sees a
half-written file.

These functions are what the bridge's UI pages call (list reports by date,
open the HTML, download the XLSX).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update

from bridge import settings
from bridge.hub.schema import report_run

PREFIX = "daily_report"
EDITIONS = "editions"  # key of report_run.figures holding the day's other editions (see Edition)


@dataclass(frozen=True)
class ReportRecord:
    day: date
    run_id: str
    built_at: datetime
    html_path: Path
    xlsx_path: Path
    recipients: list[str]
    sent_at: datetime | None
    figures: dict[str, Any]

    @property
    def sent(self) -> bool:
        return self.sent_at is not None


def reports_root() -> Path:
    return settings.data_dir() / "reports"


def report_dir(day: date, root: Path | None = None) -> Path:
    return (root or reports_root()) / day.isoformat()


def report_paths(day: date, root: Path | None = None, edition: str = "") -> dict[str, Path]:
    """html, xlsx and eml paths of a day's report (they may not exist yet); an ``edition`` other than the main
    one gets its name as a suffix (``daily_report_<day>_hr.html``)."""
    folder = report_dir(day, root)
    stem = f"{PREFIX}_{day.isoformat()}" + (f"_{edition}" if edition else "")
    return {"html": folder / f"{stem}.html", "xlsx": folder / f"{stem}.xlsx", "eml": folder / f"{stem}.eml"}


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _record(row: Any) -> ReportRecord:
    m = row._mapping
    return ReportRecord(day=m["day"], run_id=m["run_id"], built_at=m["built_at"], html_path=Path(m["html_path"]),
                        xlsx_path=Path(m["xlsx_path"]), recipients=list(m["recipients"] or []),
                        sent_at=m["sent_at"], figures=dict(m["figures"] or {}))


def get_report(conn: Connection, day: date) -> ReportRecord | None:
    row = conn.execute(select(report_run).where(report_run.c.day == day)).first()
    return _record(row) if row is not None else None


def list_reports(conn: Connection, limit: int = 60, offset: int = 0) -> list[ReportRecord]:
    """Reports newest day first (for the UI's list)."""
    rows = conn.execute(select(report_run).order_by(report_run.c.day.desc()).limit(limit).offset(offset))
    return [_record(r) for r in rows]


def record_build(conn: Connection, *, day: date, run_id: str, built_at: datetime, paths: Mapping[str, Path],
                 recipients: list[str], figures: dict[str, Any]) -> ReportRecord:
    """Insert or refresh the day's row (``paths`` as :func:`report_paths` names them); a rebuild keeps
    ``sent_at`` (the mail already went out)."""
    before = get_report(conn, day)
    kept = (before.figures.get(EDITIONS) if before else None) or {}
    figures = {**figures, EDITIONS: kept} if kept else figures
    values = {"run_id": run_id, "built_at": built_at, "html_path": str(paths["html"]),
              "xlsx_path": str(paths["xlsx"]), "recipients": recipients, "figures": figures}
    if conn.execute(update(report_run).where(report_run.c.day == day).values(**values)).rowcount == 0:
        conn.execute(report_run.insert().values(day=day, sent_at=None, **values))
    record = get_report(conn, day)
    assert record is not None
    return record


def mark_sent(conn: Connection, day: date, recipients: list[str], at: datetime) -> None:
    conn.execute(update(report_run).where(report_run.c.day == day).values(sent_at=at, recipients=recipients))


# ---------------------------------------------------------------- editions (one per audience)
# The main edition (the policy's ``audiences.report.daily_report`` role) is the report_run row itself; every
# other edition of the day is kept in that row's ``figures["editions"]`` under its audience role, with its own
# files (suffix = the role) and its own mail list and sent time. No schema change: the row stays one per day.


@dataclass(frozen=True)
class Edition:
    audience: str
    html_path: Path
    xlsx_path: Path
    eml_path: Path
    recipients: list[str]
    sent_at: datetime | None

    @property
    def sent(self) -> bool:
        return self.sent_at is not None


def editions(record: ReportRecord | None) -> list[Edition]:
    """The day's editions other than the main one, in the order they were built."""
    return editions_in(record.figures if record else None)


def editions_in(figures: Mapping[str, Any] | None) -> list[Edition]:
    """The editions a ``report_run.figures`` value records (what the UI's report page lists)."""
    out = []
    for audience, e in ((figures or {}).get(EDITIONS) or {}).items():
        sent = e.get("sent_at")
        out.append(Edition(audience=str(audience), html_path=Path(e["html"]), xlsx_path=Path(e["xlsx"]),
                           eml_path=Path(e["eml"]), recipients=[str(r) for r in e.get("recipients") or []],
                           sent_at=datetime.fromisoformat(sent) if sent else None))
    return out


def _set_edition(conn: Connection, day: date, audience: str, entry: dict[str, Any]) -> None:
    record = get_report(conn, day)
    if record is None:
        raise RuntimeError(f"report_run has no row for {day}: build the main edition before the {audience} one")
    figures = dict(record.figures)
    figures[EDITIONS] = {**(figures.get(EDITIONS) or {}), audience: entry}
    conn.execute(update(report_run).where(report_run.c.day == day).values(figures=figures))


def record_edition(conn: Connection, *, day: date, audience: str, paths: Mapping[str, Path],
                   recipients: list[str]) -> None:
    """Record (or refresh) the ``audience`` edition of ``day``; a rebuild keeps its ``sent_at``."""
    before = next((e for e in editions(get_report(conn, day)) if e.audience == audience), None)
    sent = before.sent_at.isoformat() if before and before.sent_at else None
    _set_edition(conn, day, audience, {"html": str(paths["html"]), "xlsx": str(paths["xlsx"]),
                                       "eml": str(paths["eml"]), "recipients": recipients, "sent_at": sent})


def mark_edition_sent(conn: Connection, day: date, audience: str, recipients: list[str], at: datetime) -> None:
    edition = next(e for e in editions(get_report(conn, day)) if e.audience == audience)
    _set_edition(conn, day, audience, {"html": str(edition.html_path), "xlsx": str(edition.xlsx_path),
                                       "eml": str(edition.eml_path), "recipients": recipients,
                                       "sent_at": at.isoformat()})
