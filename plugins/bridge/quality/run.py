"""One data-health run: frames from the hub → GX suites → outcomes → scores → hub (+ Data Docs).

Frames are built and validated one at a time and dropped, so memory is
bounded by the largest entity's frame, not by the hub. Reading uses one
connection (a server-side cursor on PostgreSQL); the day's results and scores
are written in one short transaction at the end.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine

from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.quality import calendar_check, config, frames
from bridge.quality.checks import CALENDAR_FRAME, Check, all_checks, by_frame
from bridge.quality.gx import GxSession
from bridge.quality.results import CheckOutcome, row_outcome, table_outcome
from bridge.quality.scores import Score, compute_scores, save_day

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameCost:
    """What validating one frame cost (reported by the run and the benchmark)."""

    frame: str
    total_rows: int
    read_rows: int
    rows: int  # rows validated (after sampling)
    checks: int
    build_seconds: float
    validate_seconds: float
    sampled: bool
    peak_rss_mb: float = 0.0  # of the process so far: shows which frame drives the peak


@dataclass
class HealthRun:
    day: date
    run_id: str
    outcomes: list[CheckOutcome]
    scores: list[Score]
    costs: list[FrameCost] = field(default_factory=list)
    docs_index: Path | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def overall(self) -> float:
        return next(s.score for s in self.scores if s.scope_type == "overall")

    def outcome(self, check_id: str) -> CheckOutcome:
        for o in self.outcomes:
            if o.check.check_id == check_id:
                return o
        raise KeyError(f"no check {check_id!r} in this run")

    @property
    def failing(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success]


def business_day(at: datetime) -> date:
    """The Asia/Shanghai date of an instant (the day a run reports on)."""
    from bridge.dictionary.formats import SHANGHAI

    return at.astimezone(SHANGHAI).date()


def docs_dir(data_dir: Path | None = None) -> Path:
    from bridge import settings

    return (data_dir or settings.data_dir()) / "data_docs"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _validate_rows(session: GxSession, frame: frames.Frame, checks: Sequence[Check],
                   kept: int) -> tuple[list[CheckOutcome], float]:
    started = time.perf_counter()
    verdicts = session.validate(frame.name, frame.data, checks)
    outcomes = [row_outcome(frame.data, c, verdicts[c.check_id], kept) for c in checks]
    return outcomes, time.perf_counter() - started


def run_checks(
    hub: Engine,
    *,
    day: date,
    run_id: str,
    now: datetime | None = None,
    dictionary: Dictionary | None = None,
    cfg: config.HealthSettings | None = None,
    data_dir: Path | None = None,
    build_docs: bool = True,
    save: bool = True,
) -> HealthRun:
    """Validate the hub, store the day's results and scores, build the Data Docs."""
    import bridge.dictionary

    started = time.perf_counter()
    now = now or datetime.now(UTC)
    d = dictionary or bridge.dictionary.load()
    cfg = cfg or config.load()
    checks = all_checks(d, cfg, store.REASON_CODES)
    grouped = by_frame(checks)
    session = GxSession(run_name=run_id)
    outcomes: list[CheckOutcome] = []
    costs: list[FrameCost] = []
    kept = cfg.failing_ids_kept

    def account(frame: frames.Frame, frame_checks: Sequence[Check], seconds: float) -> None:
        costs.append(FrameCost(frame.name, frame.total_rows, frame.read_rows, len(frame.data),
                               len(frame_checks), round(frame.seconds, 3), round(seconds, 3), frame.sampled,
                               round(_peak_rss_mb(), 1)))
        log.info("data health: frame %s: %d of %d rows, %d checks, build %.1fs, validate %.1fs",
                 frame.name, len(frame.data), frame.total_rows, len(frame_checks), frame.seconds, seconds)

    with hub.connect() as conn:
        company_ids = frames.existing_ids(conn, "crm", "company") if "company" in d.entities else set()
        facts = frames.CrossFacts()
        verdict_memo = frames.FormatVerdicts()
        for entity in d.entities:
            frame_checks = grouped.get(entity, [])
            if not frame_checks and entity not in frames.FACT_ENTITIES:
                continue
            frame = frames.entity_frame(conn, d, entity, frame_checks, company_ids=company_ids,
                                        max_rows=cfg.max_rows_per_suite, batch=cfg.snapshot_batch,
                                        facts=facts, verdicts=verdict_memo)
            found, seconds = _validate_rows(session, frame, frame_checks, kept) if frame_checks else ([], 0.0)
            outcomes += found
            account(frame, frame_checks, seconds)
            del frame
        company_ids.clear()
        for build in (lambda: frames.links_frame(conn), lambda: frames.amounts_frame(conn, facts)):
            frame = build()
            frame_checks = grouped.get(frame.name, [])
            if frame_checks:
                found, seconds = _validate_rows(session, frame, frame_checks, kept)
                outcomes += found
                account(frame, frame_checks, seconds)

        sync_checks = grouped.get("sync", [])
        if sync_checks:
            frame, _last = frames.sync_frame(conn, [c.field or "" for c in sync_checks], now)
            t0 = time.perf_counter()
            verdicts = session.validate(frame.name, frame.data, sync_checks)
            for c in sync_checks:
                outcomes.append(table_outcome(c, verdicts[c.check_id], evaluated=1, failing_ids=[c.field or ""]))
            account(frame, sync_checks, time.perf_counter() - t0)

        backlog_checks = grouped.get("quarantine", [])
        if backlog_checks:
            backlog = frames.quarantine_backlog(conn, [c.field or "" for c in backlog_checks], kept)
            frame = frames.quarantine_frame(backlog)
            t0 = time.perf_counter()
            verdicts = session.validate(frame.name, frame.data, backlog_checks)
            for c in backlog_checks:
                reason = c.field or ""
                outcomes.append(table_outcome(
                    c, verdicts[c.check_id], evaluated=backlog.open_by_reason.get(reason, 0),
                    failing_ids=backlog.examples.get(reason, []), owners=backlog.owners.get(reason, {}),
                ))
            account(frame, backlog_checks, time.perf_counter() - t0)

        calendar_checks = grouped.get(CALENDAR_FRAME, [])
        if calendar_checks:  # the working-day calendar knows this and (from November) next year's holidays
            found, frame, seconds = calendar_check.evaluate(session, calendar_checks, day)
            outcomes += found
            account(frame, calendar_checks, seconds)

    docs_index = None
    if build_docs:
        docs_index = session.build_docs(docs_dir(data_dir))
    scores = compute_scores(outcomes, d.entities)
    if save:
        with hub.begin() as conn:
            save_day(conn, day, run_id, outcomes, scores, now)
    run = HealthRun(day=day, run_id=run_id, outcomes=outcomes, scores=scores, costs=costs, docs_index=docs_index,
                    seconds=round(time.perf_counter() - started, 3), peak_rss_mb=round(_peak_rss_mb(), 1))
    log.info("data health %s: %d checks, %d failing, overall score %.2f, %.1fs, pid %d",
             day, len(outcomes), len(run.failing), run.overall, run.seconds, os.getpid())
    return run
