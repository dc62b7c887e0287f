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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine

from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.quality import calendar_check, config, documents_check, frames
from bridge.quality.checks import CALENDAR_FRAME, Check, all_checks, by_frame
from bridge.quality.gx import GxSession, Verdict
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


@dataclass(frozen=True)
class HealthOutput:
    """Where a run's results go: the Data Docs (under ``data_dir``) and the hub's day tables."""

    data_dir: Path | None = None
    build_docs: bool = True
    save: bool = True


@dataclass
class _Tally:
    """What the run has found so far: each check's outcome and what each frame cost."""

    session: GxSession
    kept: int
    outcomes: list[CheckOutcome] = field(default_factory=list)
    costs: list[FrameCost] = field(default_factory=list)

    def rows(self, frame: frames.Frame, checks: Sequence[Check]) -> None:
        """Validate a row-per-record frame (when it has checks) and account for it."""
        seconds = 0.0
        if checks:
            started = time.perf_counter()
            verdicts = self.session.validate(frame.name, frame.data, checks)
            self.outcomes += [row_outcome(frame.data, c, verdicts[c.check_id], self.kept) for c in checks]
            seconds = time.perf_counter() - started
        self.account(frame, checks, seconds)

    def table(
        self, frame: frames.Frame, checks: Sequence[Check], outcome: Callable[[Check, Verdict], CheckOutcome]
    ) -> None:
        """Validate a whole-table frame; ``outcome`` turns each check's verdict into its outcome."""
        started = time.perf_counter()
        verdicts = self.session.validate(frame.name, frame.data, checks)
        self.outcomes += [outcome(c, verdicts[c.check_id]) for c in checks]
        self.account(frame, checks, time.perf_counter() - started)

    def account(self, frame: frames.Frame, checks: Sequence[Check], seconds: float) -> None:
        self.costs.append(FrameCost(frame.name, frame.total_rows, frame.read_rows, len(frame.data),
                                    len(checks), round(frame.seconds, 3), round(seconds, 3), frame.sampled,
                                    round(_peak_rss_mb(), 1)))
        log.info("data health: frame %s: %d of %d rows, %d checks, build %.1fs, validate %.1fs",
                 frame.name, len(frame.data), frame.total_rows, len(checks), frame.seconds, seconds)


def run_checks(
    hub: Engine,
    *,
    day: date,
    run_id: str,
    now: datetime | None = None,
    dictionary: Dictionary | None = None,
    cfg: config.HealthSettings | None = None,
    output: HealthOutput = HealthOutput(),
) -> HealthRun:
    """Validate the hub, store the day's results and scores, build the Data Docs."""
    import bridge.dictionary

    started = time.perf_counter()
    now = now or datetime.now(UTC)
    d = dictionary or bridge.dictionary.load()
    cfg = cfg or config.load()
    grouped = by_frame(all_checks(d, cfg, store.REASON_CODES))
    tally = _Tally(GxSession(run_name=run_id), cfg.failing_ids_kept)
    with hub.connect() as conn:
        _validate_records(conn, d, cfg, grouped, tally)
        _validate_tables(conn, grouped, tally, now, day)
        for frame in documents_check.document_frames(conn, now, grouped):  # attachments (issue 19)
            tally.rows(frame, grouped[frame.name])
    docs_index = tally.session.build_docs(docs_dir(output.data_dir)) if output.build_docs else None
    outcomes = tally.outcomes
    scores = compute_scores(outcomes, d.entities)
    if output.save:
        with hub.begin() as conn:
            save_day(conn, day, run_id, outcomes, scores, now)
    run = HealthRun(day=day, run_id=run_id, outcomes=outcomes, scores=scores, costs=tally.costs,
                    docs_index=docs_index, seconds=round(time.perf_counter() - started, 3),
                    peak_rss_mb=round(_peak_rss_mb(), 1))
    log.info("data health %s: %d checks, %d failing, overall score %.2f, %.1fs, pid %d",
             day, len(outcomes), len(run.failing), run.overall, run.seconds, os.getpid())
    return run


def _validate_records(conn: Connection, d: Dictionary, cfg: config.HealthSettings,
                      grouped: Mapping[str, list[Check]], tally: _Tally) -> None:
    """One frame per entity, built and validated one at a time (memory: the largest frame), then the links,
    orphaned links and amounts frames (the amounts from the cross-system facts the entity frames collected)."""
    company_ids = frames.existing_ids(conn, "crm", "company") if "company" in d.entities else set()
    facts = frames.CrossFacts()
    reading = frames.EntityReading(max_rows=cfg.max_rows_per_suite, batch=cfg.snapshot_batch,
                                   company_ids=company_ids, merged_company_ids=frames.merged_away_ids(conn, "company"),
                                   facts=facts, verdicts=frames.FormatVerdicts())
    for entity in d.entities:
        frame_checks = grouped.get(entity, [])
        if not frame_checks and entity not in frames.FACT_ENTITIES:
            continue
        frame = frames.entity_frame(conn, d, entity, frame_checks, reading)
        tally.rows(frame, frame_checks)
        del frame
    company_ids.clear()
    for build in (lambda: frames.links_frame(conn), lambda: frames.orphans_frame(conn),
                  lambda: frames.amounts_frame(conn, facts)):
        frame = build()
        frame_checks = grouped.get(frame.name, [])
        if frame_checks:
            tally.rows(frame, frame_checks)


def _validate_tables(conn: Connection, grouped: Mapping[str, list[Check]], tally: _Tally, now: datetime,
                     day: date) -> None:
    """The whole-table checks: sync freshness, the quarantine backlog, the working-day calendar."""
    sync_checks = grouped.get("sync", [])
    if sync_checks:
        frame, _last = frames.sync_frame(conn, [c.field or "" for c in sync_checks], now)
        tally.table(frame, sync_checks,
                    lambda c, verdict: table_outcome(c, verdict, evaluated=1, failing_ids=[c.field or ""]))
    backlog_checks = grouped.get("quarantine", [])
    if backlog_checks:
        backlog = frames.quarantine_backlog(conn, [c.field or "" for c in backlog_checks], tally.kept)
        tally.table(frames.quarantine_frame(backlog), backlog_checks, lambda c, verdict: table_outcome(
            c, verdict, evaluated=backlog.open_by_reason.get(c.field or "", 0),
            failing_ids=backlog.examples.get(c.field or "", []), owners=backlog.owners.get(c.field or "", {}),
        ))
    calendar_checks = grouped.get(CALENDAR_FRAME, [])
    if calendar_checks:  # the working-day calendar knows this and (from November) next year's holidays
        found, frame, seconds = calendar_check.evaluate(tally.session, calendar_checks, day)
        tally.outcomes += found
        tally.account(frame, calendar_checks, seconds)
