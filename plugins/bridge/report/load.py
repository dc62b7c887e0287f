"""Hub → compact pandas frames: the only place the report reads the hub.

Snapshot payloads are read in batches (a server-side cursor on PostgreSQL)
and only the fields the report needs are kept, as compact columns: text as
categorical codes, amounts as float cents (integers, so sums are exact),
dates as ``datetime64``. A million deals fit in a few tens of MB.

Every record value then passes through the permission policy for the
report's audience (``audiences.report.daily_report`` → 管理层): a field the
role may not see is dropped from the frame (the marts then leave out what
needs it, and the report says so), a masked field is masked with
``Policy.project`` itself, value by distinct value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from bridge import runkinds
from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.hub.schema import quarantine, run_summary, snapshot, watermark, xref
from bridge.permissions import Policy
from bridge.sync.freshness import SyncFreshness, sync_freshness

log = logging.getLogger(__name__)

BATCH = 20_000

# The canonical fields each entity contributes to the report (kinds come from the dictionary).
REPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "deal": ("crm_id", "stage", "contract_amount", "close_date", "owner_id", "company_id", "created_at",
             "approval_status"),
    "company": ("crm_id", "name"),
    "project_initiation": ("instance_code", "approval_status", "created_at", "decided_at", "deal_id", "project_no",
                           "project_name"),
    "expense_claim": ("instance_code", "approval_status", "created_at", "decided_at", "amount", "expense_date",
                      "customer_id", "project_no"),
    "travel_request": ("instance_code", "approval_status", "created_at", "decided_at", "estimated_cost",
                       "start_date", "customer_id", "project_no"),
    "visit_plan": ("instance_code", "approval_status", "created_at", "decided_at", "visit_date", "customer_id",
                   "project_no"),
    "contract_amount_notice": ("instance_code", "approval_status", "created_at"),
}


# Entities whose archived (deleted) records the report counts to say they are left out (a line in its sections).
ARCHIVED_COUNTED = ("deal",)


class ReportDataError(ValueError):
    """The report asks for something the data dictionary does not define (configuration drift)."""


@dataclass
class ReportData:
    """Everything the marts compute from; plain frames and lists, no hub handles."""

    frames: dict[str, pd.DataFrame]
    hidden: dict[str, list[str]]  # entity → report fields the audience may not see
    deal_links: pd.DataFrame  # xref deal_project: crm_id, oa_id
    runs: pd.DataFrame  # run_summary of the syncs (recent): direction, status, started_at, finished_at, counts
    freshness: dict[str, SyncFreshness]  # direction → last successful run, unsent changes (bridge.sync.freshness)
    watermarks: pd.DataFrame  # stream, value_ms, updated_at
    quarantine: pd.DataFrame  # reason_code, direction, open, oldest
    health: pd.DataFrame  # day, scope_type, scope, score
    built_at: datetime
    role: str = "management"
    role_label: str = "管理层"
    counts: dict[str, int] = field(default_factory=dict)  # rows read per entity
    archived: dict[str, int] = field(default_factory=dict)  # entity → records archived (deleted) in their source


# ---------------------------------------------------------------- column builders
class _TextColumn:
    """Strings as int32 codes into a table of distinct values (missing = -1)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.chunks: list[np.ndarray] = []

    def add(self, values: Sequence[Any]) -> None:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        local, uniques = pd.factorize(array, use_na_sentinel=True)
        index = self.index
        remap = np.empty(len(uniques) + 1, dtype=np.int32)
        remap[-1] = -1  # factorize's -1 (missing) lands on the last slot
        for i, value in enumerate(uniques):
            if value == "":
                remap[i] = -1
                continue
            text = value if isinstance(value, str) else str(value)
            code = index.get(text)
            if code is None:
                code = len(index)
                index[text] = code
            remap[i] = code
        self.chunks.append(remap[local].astype(np.int32, copy=False))

    def finish(self) -> pd.Categorical:
        codes = np.concatenate(self.chunks) if self.chunks else np.empty(0, dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=pd.Index(list(self.index), dtype=object))


class _ArrayColumn:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.chunks: list[np.ndarray] = []

    def add(self, values: Sequence[Any]) -> None:
        series = pd.Series(values, dtype=object)
        if self.kind == "cents":
            numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            self.chunks.append(np.rint(numbers * 100.0))
        elif self.kind == "date":
            parsed = pd.to_datetime(series, format="%Y-%m-%d", errors="coerce")
            self.chunks.append(parsed.to_numpy(dtype="datetime64[s]"))
        else:  # datetime with offset → UTC
            parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
            self.chunks.append(parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]"))

    def finish(self) -> Any:
        empty = {"cents": np.empty(0, np.float64), "date": np.empty(0, "datetime64[s]"),
                 "datetime": np.empty(0, "datetime64[ms]")}[self.kind]
        data = np.concatenate(self.chunks) if self.chunks else empty
        if self.kind == "datetime":
            return pd.DatetimeIndex(data).tz_localize(UTC)
        return data


def field_kinds(dictionary: Dictionary, entity: str, fields: Iterable[str]) -> dict[str, str]:
    """text | cents | date | datetime per field, from the dictionary's field types."""
    spec = dictionary.entities.get(entity)
    if spec is None:
        raise ReportDataError(f"report: entity {entity!r} is not in the data dictionary")
    kinds: dict[str, str] = {}
    for name in fields:
        f = spec.fields.get(name)
        if f is None:
            raise ReportDataError(f"report: field {entity}.{name} is not in the data dictionary "
                                  "(bridge/report/load.py REPORT_FIELDS)")
        kinds[name] = {"amount": "cents", "date": "date", "datetime": "datetime"}.get(f.type, "text")
    return kinds


def iter_columns(conn: Connection, system: str, entity: str, fields: Sequence[str],
                 batch: int = BATCH) -> Iterator[list[tuple[Any, ...]]]:
    """The canonical ``fields`` of the live (not deleted) snapshots, in batches of column tuples.

    The database extracts the fields from the JSON payload (SQLite ``json_extract``,
    PostgreSQL ``->>``), so only the values the report needs cross the wire;
    the staging keys (``_invalid``, ``_problems``) are never read. Archived
    snapshots are included: they are real history.
    """
    columns = [snapshot.c.payload[name].as_string().label(name) for name in fields]
    query = select(*columns).where(
        snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(False)
    )
    result = conn.execution_options(yield_per=batch, stream_results=True).execute(query)
    for part in result.partitions(batch):
        if part:
            yield list(zip(*part, strict=True))


def frame_from_columns(chunks: Iterable[Sequence[Sequence[Any]]], kinds: Mapping[str, str]) -> pd.DataFrame:
    """A compact frame from chunks of columns (one sequence per field of ``kinds``, in order)."""
    builders: dict[str, _TextColumn | _ArrayColumn] = {
        name: _TextColumn() if kind == "text" else _ArrayColumn(kind) for name, kind in kinds.items()
    }
    for chunk in chunks:
        for builder, values in zip(builders.values(), chunk, strict=True):
            builder.add(values)
    return pd.DataFrame({name: b.finish() for name, b in builders.items()})


def frame_from_records(batches: Iterable[Sequence[Mapping[str, Any]]], kinds: Mapping[str, str]) -> pd.DataFrame:
    """The same from canonical records (tests, callers that already hold records)."""
    return frame_from_columns(([[r.get(name) for r in records] for name in kinds] for records in batches if records),
                              kinds)


def apply_policy(frame: pd.DataFrame, entity: str, policy: Policy, role: str) -> tuple[pd.DataFrame, list[str]]:
    """``Policy.project`` applied to a frame: denied columns dropped, masked values masked.

    Masks only ever apply to text fields (the policy refuses others), which are
    categorical here: each distinct value goes through ``Policy.project`` once.
    """
    probe = policy.project(entity, dict.fromkeys(frame.columns), role)
    hidden = [c for c in frame.columns if c not in probe]
    out = frame.drop(columns=hidden)
    for name in out.columns:
        if policy.mask_of(entity, name, role) is None:
            continue
        column = out[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            values: Iterable[Any] = column.cat.categories
        else:
            values = column.dropna().unique()
        mapping = {v: policy.project(entity, {name: v}, role).get(name) for v in values}
        out[name] = column.map(mapping).astype("category")
    return out, hidden


def load_entity(conn: Connection, dictionary: Dictionary, entity: str, fields: Sequence[str],
                batch: int = BATCH) -> pd.DataFrame:
    kinds = field_kinds(dictionary, entity, fields)
    system = dictionary.entities[entity].system
    return frame_from_columns(iter_columns(conn, system, entity, list(kinds), batch), kinds)


def count_archived(conn: Connection, dictionary: Dictionary, entities: Iterable[str]) -> dict[str, int]:
    """Records archived (deleted) in their source per entity: tombstoned in the hub, left out of every figure
    (``iter_columns`` reads live snapshots only); the report says how many."""
    found: dict[str, int] = {}
    for entity in entities:
        system = dictionary.entities[entity].system
        n = conn.execute(select(func.count()).select_from(snapshot).where(
            snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(True))).scalar_one()
        found[entity] = int(n)
    return found


# ---------------------------------------------------------------- the other hub tables
def load_deal_links(conn: Connection) -> pd.DataFrame:
    rows = conn.execute(select(xref.c.crm_id, xref.c.oa_id, xref.c.updated_at)
                        .where(xref.c.link_type == "deal_project", xref.c.crm_id.is_not(None),
                               xref.c.oa_id.is_not(None)))
    frame = pd.DataFrame(rows.fetchall(), columns=["crm_id", "oa_id", "updated_at"])
    return frame.astype({"crm_id": object, "oa_id": object})


def load_runs(conn: Connection, since: datetime) -> pd.DataFrame:
    """The sync runs started since ``since``, with their direction (``crm_to_oa`` / ``oa_to_crm``)."""
    rows = conn.execute(
        select(run_summary.c.kind, run_summary.c.status, run_summary.c.started_at, run_summary.c.finished_at,
               run_summary.c.counts)
        .where(run_summary.c.kind.in_(runkinds.SYNC), run_summary.c.started_at >= since)
        .order_by(run_summary.c.started_at)
    ).fetchall()
    runs = pd.DataFrame([(runkinds.DIRECTION_OF[r[0]], *r[1:]) for r in rows],
                        columns=["direction", "status", "started_at", "finished_at", "counts"])
    return runs


def load_watermarks(conn: Connection) -> pd.DataFrame:
    rows = conn.execute(select(watermark.c.stream, watermark.c.value_ms, watermark.c.updated_at)
                        .order_by(watermark.c.stream)).fetchall()
    return pd.DataFrame([tuple(r) for r in rows if store.is_time_stream(r[0])],
                        columns=["stream", "value_ms", "updated_at"])


def load_quarantine(conn: Connection) -> pd.DataFrame:
    rows = conn.execute(
        select(quarantine.c.reason_code, quarantine.c.direction, func.count(), func.min(quarantine.c.first_seen_at))
        .where(quarantine.c.resolved_at.is_(None))
        .group_by(quarantine.c.reason_code, quarantine.c.direction)
    ).fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=["reason_code", "direction", "open", "oldest"])


def load_health(conn: Connection, until: date, days: int = 40) -> pd.DataFrame:
    """Data-health scores up to ``until``: the overall trend, and every scope of the latest day and a week before.

    Read through the data-health area's public functions (``bridge.quality``).
    """
    from bridge.quality import latest_scores, score_trend

    trend = score_trend(conn, days=days, scope_type="overall", until=until)
    rows = list(trend)
    if trend:
        last = max(s.day for s in trend)
        rows += latest_scores(conn, day=last) + latest_scores(conn, day=last - timedelta(days=7))
    frame = pd.DataFrame([(s.day, s.scope_type, s.scope, s.score) for s in rows],
                         columns=["day", "scope_type", "scope", "score"])
    return frame.drop_duplicates(["day", "scope_type", "scope"]).reset_index(drop=True)


@dataclass(frozen=True)
class ReportReading:
    """Which fields of which entities to read (the report's, or the wallboard's fewer), and in what batches."""

    fields: Mapping[str, Sequence[str]] = field(default_factory=lambda: REPORT_FIELDS)
    batch: int = BATCH


def load_report_data(
    conn: Connection,
    dictionary: Dictionary,
    policy: Policy,
    *,
    role: str,
    built_at: datetime,
    health_until: date,
    reading: ReportReading = ReportReading(),
) -> ReportData:
    """Read what the report needs from the hub, with the audience's permission policy applied."""
    frames: dict[str, pd.DataFrame] = {}
    hidden: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for entity, names in reading.fields.items():
        raw = load_entity(conn, dictionary, entity, names, reading.batch)
        counts[entity] = len(raw)
        frames[entity], hidden[entity] = apply_policy(raw, entity, policy, role)
        if hidden[entity]:
            log.info("report: %s fields hidden from %s by the permission policy: %s", entity, role, hidden[entity])
    return ReportData(
        frames=frames, hidden=hidden, deal_links=load_deal_links(conn), runs=load_runs(conn, built_at - timedelta(hours=24)),
        freshness=sync_freshness(conn, built_at),
        watermarks=load_watermarks(conn), quarantine=load_quarantine(conn), health=load_health(conn, health_until),
        built_at=built_at, role=role, counts=counts,
        archived=count_archived(conn, dictionary, [e for e in ARCHIVED_COUNTED if e in reading.fields]),
    )
