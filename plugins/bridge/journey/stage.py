"""Staging one batch of journey records: map, check, quarantine the bad, upsert the good, audit, watermark.

Every journey source (a vendor page, a spreadsheet file) ends here, in ONE hub transaction per batch:
records with a blocking problem go to quarantine (direction ``journey``, the dictionary's Chinese message,
prefixed with the spreadsheet row when there is one) and are not staged, so the snapshot rows of the
journey entities never hold a record with a blocking problem; the others are upserted as snapshots
(:mod:`bridge.staging`), open quarantine entries of records that changed are closed as fixed, one audit
entry names the records staged, and the stream's watermark advances with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from bridge.dictionary import MappingResult, Problem
from bridge.hub import store
from bridge.journey import DIRECTION, SYSTEM_OF, checks
from bridge.settings_model import JourneySection
from bridge.staging import snapshot_row
from bridge.sync.frame import QuarantinedRecord, Run, blocking_problems, resolve_fixed, write_audit

JourneyRun = Run[JourneySection]


@dataclass(frozen=True)
class Candidate:
    """One record to stage: its values by field name, and where it came from when it has no usable id
    (``ref``: a spreadsheet's ``file#row``) and how staff find it (``row``: the spreadsheet row number)."""

    values: Mapping[str, Any]
    ref: str | None = None
    row: int | None = None
    problems: tuple[Problem, ...] = ()  # found before mapping (a customer or person not resolved): blocking


@dataclass(frozen=True)
class Batch:
    """What one batch did: the source ids staged (new or changed), unchanged, quarantined."""

    staged: tuple[str, ...] = ()
    unchanged: int = 0
    quarantined: int = 0


def mapped(run: JourneyRun, entity: str, candidate: Candidate) -> tuple[MappingResult, list[Problem]]:
    """The canonical record with every problem, and the blocking ones: the dictionary's that block (a
    required field missing or malformed, an unmapped value, hostile input) and every problem of the entity's
    own rules (:mod:`bridge.journey.checks`)."""
    result = run.d.from_values(entity, candidate.values)
    record, extra = checks.check(run.d, run.cfg, entity, result.record)
    needed = [f.name for f in run.d.entity(entity).fields.values() if f.required]
    blocking = [*candidate.problems, *blocking_problems(result.problems, needed), *extra]
    return MappingResult(record, [*candidate.problems, *result.problems, *extra]), blocking


def _quarantine(
    conn: Connection, run: JourneyRun, entity: str, candidate: Candidate, found: tuple[MappingResult, Problem]
) -> None:
    """The record's first blocking problem (one open entry per record; a fixed record closes it)."""
    result, problem = found
    if candidate.row is not None:
        problem = Problem(
            problem.code,
            problem.entity,
            problem.field,
            f"第 {candidate.row} 行：{problem.message}",
            problem.department,
            problem.value,
        )
    source_id = run.d.record_id(entity, result.record) or candidate.ref or "?"
    run.quarantine(
        conn,
        (SYSTEM_OF[entity], entity, source_id),
        problem,
        QuarantinedRecord(
            payload=result.record,
            content_hash=run.d.content_hash(entity, result.record),
            data_owner=run.d.data_owner(entity, result.record),
        ),
        count=True,
    )


def stage_batch(
    run: JourneyRun, entity: str, candidates: Sequence[Candidate], watermark: int | None = None
) -> Batch:
    """Stage ``candidates`` of ``entity`` in one transaction; ``watermark`` (epoch ms) advances the entity's
    stream in the same transaction (``store.set_watermark`` never moves it back)."""
    system = SYSTEM_OF[entity]
    rows: list[store.SnapshotRow] = []
    bad: list[tuple[Candidate, tuple[MappingResult, Problem]]] = []
    for candidate in candidates:
        result, blocking = mapped(run, entity, candidate)
        row = None if blocking else snapshot_row(run.d, entity, result)
        if row is None:
            bad.append((candidate, (result, blocking[0] if blocking else _no_id(run, entity))))
        else:
            rows.append(row)
    run.tally.add("read", len(candidates))
    run.tally.add(f"read_{entity}", len(candidates))
    with run.hub.begin() as conn:
        for candidate, found in bad:
            _quarantine(conn, run, entity, candidate, found)
        changes = store.upsert_snapshots(conn, system, entity, rows, now=run.now) if rows else []
        staged = tuple(c.source_id for c in changes if c.is_change)
        hashes = {r.source_id: r.content_hash for r in rows if r.source_id in set(staged)}
        run.tally.add("fixed", len(resolve_fixed(conn, run.ctx, DIRECTION, entity, hashes, now=run.now)))
        if staged:
            ids = {"staged": len(staged), "first_id": staged[0], "last_id": staged[-1]}
            event = run.audit("stage", (system, entity), ids, [], "staged", detail=",".join(staged)[:1000])
            write_audit(conn, run.ctx, [event])
        if watermark is not None:
            stream = f"{system}.{entity}"
            run.tally.watermarks[stream] = store.set_watermark(
                conn, stream, watermark, run.ctx.run_id, now=run.now
            )
    run.tally.add("staged", len(staged))
    run.tally.add(f"staged_{entity}", len(staged))
    run.tally.add("unchanged", len(changes) - len(staged))
    return Batch(staged, len(changes) - len(staged), len(bad))


def _no_id(run: JourneyRun, entity: str) -> Problem:
    """The problem of a record without an id (it cannot be staged; the dictionary reports the field)."""
    e = run.d.entity(entity)
    f = e.fields[e.id_field]
    return Problem("missing_required", entity, f.name, f"{e.label}缺少「{f.label}」（{f.name}），无法暂存。", f.owner)
