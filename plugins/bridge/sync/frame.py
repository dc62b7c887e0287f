"""The frame both sync directions run in: one run object, the load lease, due changes, defer, summary.

A direction's steps (``bridge.sync.crm_to_oa``, ``bridge.sync.oa_to_crm``) keep
their own exactly-once reasoning; what they share is here, written once: the
:class:`Run` (hooks, hub, context, settings, clock, dictionary, policy, tally),
one writer per direction (:func:`exclusive_load`), the due changes of a load,
deferring them when a vendor stays unavailable, the ``checkpoint`` the crash
tests use, quarantine and audit helpers and the run summary.

Everything that writes takes a SQLAlchemy ``Connection`` whose transaction the
caller owns, like :mod:`bridge.hub.store`: a step's writes and its watermark or
queue completion commit together.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypedDict, TypeVar

from sqlalchemy import Connection, Engine

import bridge.dictionary
from bridge import permissions, runkinds
from bridge.context import RunContext
from bridge.dictionary import Dictionary, Problem
from bridge.hooks.errors import VendorError
from bridge.hub import audit, store
from bridge.hub.audit import AuditEvent
from bridge.hub.store import PendingChange, PendingKey
from bridge.permissions import Policy
from bridge.sync.common import ALWAYS_BLOCKING

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook

log = logging.getLogger("bridge.sync")

# A change deferred after an outage waits retry_delay_seconds × 2^attempts, at most this long.
MAX_DEFER_SECONDS = 900

Checkpoint = Callable[[str], None]
Target = tuple[str, str]  # an audit entry's system and entity
RecordIds = Mapping[str, Any]  # the ids an audit entry names
FieldNames = Iterable[str] | Mapping[str, Any]  # the fields an audit entry names (names only)
SettingsT = TypeVar("SettingsT")


class SyncIncomplete(RuntimeError):
    """The run stopped early because a vendor was unavailable; what it did is committed, the rest waits."""


def incomplete(who: str, stop: VendorError, waiting: str) -> SyncIncomplete:
    """The error a step raises after committing its work when ``who`` stayed unavailable."""
    return SyncIncomplete(
        f"{who} was unavailable ({type(stop).__name__}: {stop.status} {stop.code}); "
        f"{waiting} wait for the next run"
    )


class RunOptions(TypedDict, total=False):
    """What tests, the bench and the demo may pass to a step: a dictionary and policy already loaded, and
    the crash tests' ``checkpoint`` (called after each committed step)."""

    dictionary: Dictionary | None
    policy: Policy | None
    checkpoint: Checkpoint | None


def tools(dictionary: Dictionary | None, policy: Policy | None) -> tuple[Dictionary, Policy]:
    """The data dictionary and permission policy of a run (loaded from include/ unless given)."""
    d = dictionary or bridge.dictionary.load()
    return d, policy or permissions.load(dictionary=d)


def with_overrides(cfg: SettingsT, **changes: Any) -> SettingsT:
    """A copy of a direction's settings with some values changed (tests, bench, demo)."""
    return replace(cfg, **changes)  # type: ignore[type-var]


# ---------------------------------------------------------------- API call counts


class CountsCalls(Protocol):
    api_calls: Counter[str]


def calls_snapshot(**hooks: CountsCalls | None) -> dict[str, Counter[str]]:
    """The hooks' counters now, to count one task's calls with :func:`calls_since`."""
    return {name: Counter(hook.api_calls) for name, hook in hooks.items() if hook is not None}


def calls_since(before: Mapping[str, Counter[str]], **hooks: CountsCalls | None) -> dict[str, dict[str, int]]:
    """The calls made since :func:`calls_snapshot` (hooks can be shared between tasks in tests)."""
    out: dict[str, dict[str, int]] = {}
    for name, hook in hooks.items():
        if hook is not None:
            delta = Counter(hook.api_calls)
            delta.subtract(before.get(name, Counter()))
            out[name] = {k: v for k, v in sorted(delta.items()) if v > 0}
    return out


def merge_api_calls(*parts: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[str, int]]:
    merged: dict[str, Counter[str]] = {}
    for part in parts:
        for system, calls in (part or {}).items():
            merged.setdefault(system, Counter()).update(calls)
    return {system: dict(sorted(calls.items())) for system, calls in sorted(merged.items())}


def total_calls(api_calls: Mapping[str, Mapping[str, int]], *, include_auth: bool = False) -> int:
    """All calls in a nested count; token requests only with ``include_auth``."""
    return sum(
        n
        for calls in api_calls.values()
        for endpoint, n in calls.items()
        if include_auth or ("/oauth/" not in endpoint and "/auth/" not in endpoint)
    )


# ---------------------------------------------------------------- the run


@dataclass
class Tally:
    """What a task did: named counts plus API calls; small enough for XCom."""

    counts: Counter[str] = field(default_factory=Counter)
    watermarks: dict[str, int] = field(default_factory=dict)
    api_calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] += n

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "watermarks": dict(self.watermarks),
            "api_calls": self.api_calls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Tally:
        data = data or {}
        return cls(
            counts=Counter({str(k): int(v) for k, v in (data.get("counts") or {}).items()}),
            watermarks={str(k): int(v) for k, v in (data.get("watermarks") or {}).items()},
            api_calls={
                str(s): {str(e): int(n) for e, n in c.items()}
                for s, c in (data.get("api_calls") or {}).items()
            },
        )


@dataclass(frozen=True)
class Hooks:
    """The vendor hooks a task uses (a step asks for the one it needs; a missing one is a wiring error)."""

    crm_hook: CrmHook | None = None
    oa_hook: OaHook | None = None

    @property
    def crm(self) -> CrmHook:
        assert self.crm_hook is not None, "this step needs the CRM hook"
        return self.crm_hook

    @property
    def oa(self) -> OaHook:
        assert self.oa_hook is not None, "this step needs the OA hook"
        return self.oa_hook


@dataclass(frozen=True)
class Run(Generic[SettingsT]):
    """One task of one direction: hooks, hub, run context, settings, clock, dictionary, policy and tally."""

    direction: str
    hooks: Hooks
    hub: Engine
    ctx: RunContext
    cfg: SettingsT
    now: datetime
    d: Dictionary
    p: Policy | None = None  # None: a step that writes no field to a vendor (extract, discover's staging)
    tally: Tally = field(default_factory=Tally)
    checkpoint: Checkpoint | None = None

    @property
    def policy(self) -> Policy:
        assert self.p is not None, "this step needs the permission policy"
        return self.p

    def step(self, name: str) -> None:
        """Mark a step as done (the crash tests stop a run here; nothing in production)."""
        if self.checkpoint is not None:
            self.checkpoint(name)

    def at(self, now: datetime) -> Run[SettingsT]:
        """The same run with another clock and a fresh tally (the next task of a cycle)."""
        return replace(self, now=now, tally=Tally())

    def quarantine(
        self,
        conn: Connection,
        where: tuple[str, str, str],
        problem: Problem,
        record: QuarantinedRecord,
        *,
        count: bool = False,
    ) -> int:
        """Quarantine a record of ``where`` = (system, entity, source id) for one of its problems; with
        ``count`` the tally says ``quarantined`` and ``quarantined_<reason>``."""
        system, entity, source_id = where
        if count:
            self.tally.add("quarantined")
            self.tally.add(f"quarantined_{problem.code}")
        return quarantine_problem(
            conn,
            self.ctx,
            RecordPlace(self.direction, system, entity, source_id),
            problem,
            replace(record, dictionary_version=self.d.version),
            now=self.now,
        )

    def enqueue(
        self,
        conn: Connection,
        queue: Sequence[tuple[str, str, str]],
        quiet_seconds: float,
        max_delay_seconds: float,
    ) -> None:
        """Queue ``(entity, source id, content hash)`` changes of this direction, debounced (counted ``enqueued``)."""
        self.tally.add(
            "enqueued",
            store.enqueue_changes(conn, self.direction, queue, self.now, quiet_seconds, max_delay_seconds),
        )

    def audit(
        self,
        operation: str,
        target: Target,
        ids: RecordIds,
        fields: FieldNames,
        outcome: str,
        detail: str | None = None,
    ) -> AuditEvent:
        """An audit entry of this run (``target`` = system, entity), dictionary and policy versions stamped."""
        return audit_event(
            operation,
            target,
            ids,
            fields,
            outcome,
            AuditStamp(detail, self.d, self.p.version if self.p is not None else None),
        )

    def add_links(self, conn: Connection, link_type: str, links: Sequence[store.NewLink]) -> None:
        """Insert new links stamped with this run (the caller's transaction)."""
        store.add_links(
            conn, link_type, links, dictionary_version=self.d.version, run_id=self.ctx.run_id, now=self.now
        )

    def save_link(self, conn: Connection, link_type: str, link: store.NewLink) -> store.Link:
        """Create or update one link stamped with this run (the caller's transaction)."""
        return store.save_link(
            conn, link_type, link, dictionary_version=self.d.version, run_id=self.ctx.run_id, now=self.now
        )

    def close_batch(self, conn: Connection, events: Sequence[AuditEvent], keys: Sequence[PendingKey]) -> None:
        """The end of a batch's transaction: its audit entries, then its changes completed."""
        write_audit(conn, self.ctx, events)
        self.complete(conn, keys)

    def complete(self, conn: Connection, keys: Sequence[PendingKey]) -> None:
        """Complete pending changes of this direction (the caller's transaction)."""
        store.complete_changes(conn, self.direction, keys)

    def count_calls(self, before: Mapping[str, Counter[str]]) -> None:
        """The task's API calls since ``before`` (:meth:`calls_now`) into its tally."""
        self.tally.api_calls = calls_since(before, crm=self.hooks.crm_hook, oa=self.hooks.oa_hook)

    def finish(self, label: str, before: Mapping[str, Counter[str]]) -> None:
        """The task's API calls since ``before`` into its tally, and its summary line in the log."""
        self.count_calls(before)
        self.log_summary(label)

    def log_summary(self, label: str) -> None:
        log.info("%s", summary_line(label, self.tally.counts, self.tally.api_calls))

    def calls_now(self) -> dict[str, Counter[str]]:
        return calls_snapshot(crm=self.hooks.crm_hook, oa=self.hooks.oa_hook)


def new_run(
    direction: str,
    hooks: Hooks,
    hub: Engine,
    ctx: RunContext,
    cfg: SettingsT,
    now: datetime,
    options: RunOptions,
) -> Run[SettingsT]:
    """A run of a step that writes to a vendor: the dictionary and the policy loaded unless given."""
    d, p = tools(options.get("dictionary"), options.get("policy"))
    return Run(direction, hooks, hub, ctx, cfg, now, d, p, checkpoint=options.get("checkpoint"))


@dataclass(frozen=True)
class QuarantinedRecord:
    """What a quarantine entry keeps of the record: the canonical payload (never the vendor object), the
    content hash (a changed source closes the entry as fixed; None waits for a person) and its owner."""

    payload: Mapping[str, Any] | None = None
    content_hash: str | None = None
    data_owner: str | None = None
    dictionary_version: str | None = None


class RecordPlace(NamedTuple):
    """Where a quarantined record comes from: the sync direction, its system, entity and id there."""

    direction: str
    system: str
    entity: str
    source_id: str


def key_of(change: PendingChange) -> PendingKey:
    """The key that completes exactly this state of a pending change."""
    return PendingKey(change.entity, change.source_id, change.content_hash)


# ---------------------------------------------------------------- due changes and defer


def take_due(run: Run[Any], limit: int, handled: Callable[[PendingChange], bool]) -> list[PendingChange]:
    """The direction's due changes (oldest first, at most ``limit``); those of entities this load does not
    handle are completed at once (``ignored_entity``)."""
    with run.hub.connect() as conn:
        due = store.due_changes(conn, run.direction, run.now, limit=limit)
    run.tally.add("due", len(due))
    other = [c for c in due if not handled(c)]
    if other:
        with run.hub.begin() as conn:
            run.complete(conn, [key_of(c) for c in other])
        run.tally.add("ignored_entity", len(other))
    return [c for c in due if handled(c)]


def defer(run: Run[Any], changes: Sequence[PendingChange], retry_delay_seconds: float, who: str) -> None:
    """Put changes back in the queue after an outage: retry_delay × 2^attempts (capped), attempts counted."""
    deferred = 0
    with run.hub.begin() as conn:
        for change in changes:
            delay = min(MAX_DEFER_SECONDS, retry_delay_seconds * (2 ** min(change.attempts, 6)))
            if (
                store.defer_change(conn, run.direction, change.entity, change.source_id, run.now, delay)
                is not None
            ):
                deferred += 1
    run.tally.add("deferred", deferred)
    log.warning("%s: %s unavailable; %d change(s) deferred", run.direction, who, deferred)


# ---------------------------------------------------------------- one writer per direction

# A load holds its direction's lease while it writes; a load that finds it taken leaves its due changes to
# the holder. As long as the load tasks' execution_timeout: a holder that died (SIGKILL) frees it by then,
# and Airflow's retry of the same task instance (same holder) takes it over at once.
LOAD_LEASE_TTL_SECONDS = 1200.0


@contextmanager
def _load_lease(hub: Engine, direction: str, ctx: RunContext, now: datetime) -> Iterator[store.Lease | None]:
    """Yields None when this run holds the direction's lease (released at the end), else the other holder's."""
    name, holder = f"sync.{direction}.load", f"{ctx.dag_id}/{ctx.run_id}/{ctx.task_id}"
    with hub.begin() as conn:
        taken = store.acquire_lease(conn, name, holder, LOAD_LEASE_TTL_SECONDS, now=now)
        other = None if taken else store.get_lease(conn, name)
    try:
        yield other
    finally:
        if taken:
            with hub.begin() as conn:
                store.release_lease(conn, name, holder)


class CheckedSettings(Protocol):
    def check(self, dictionary: Dictionary) -> None: ...


CheckedT = TypeVar("CheckedT", bound=CheckedSettings)


def load_alone(run: Run[CheckedT], deliver: Callable[[Run[CheckedT]], Tally]) -> Tally:
    """A direction's load: its settings checked against the dictionary, then ``deliver`` holding the lease."""
    run.cfg.check(run.d)
    return exclusive_load(run.hub, run.direction, run.ctx, run.now, lambda: deliver(run))


def exclusive_load(
    hub: Engine, direction: str, ctx: RunContext, now: datetime, work: Callable[[], Tally]
) -> Tally:
    """Run ``work`` (a direction's load) holding the direction's lease, so that loads of one direction never
    overlap (a manual run overlapping the scheduled one, a zombie task). A load that finds the lease taken
    writes nothing and leaves the due changes to the holder: its tally says ``skipped_other_load``."""
    with _load_lease(hub, direction, ctx, now) as other:
        if other is None:
            return work()
    log.warning(
        "%s load: another run (%s) is loading; its due changes are left to it", direction, other.holder
    )
    tally = Tally()
    tally.add("skipped_other_load")
    return tally


# ---------------------------------------------------------------- quarantine


def blocking_problems(problems: Iterable[Problem], needed_fields: Iterable[str] = ()) -> list[Problem]:
    """The problems that stop a record from being sent (see ``ALWAYS_BLOCKING``).

    ``invalid_format`` blocks only on a field the target needs (``needed_fields``):
    elsewhere the value is staged as missing and reported by the data-health suites.
    """
    needed = set(needed_fields)
    return [
        p for p in problems if p.code in ALWAYS_BLOCKING or (p.code == "invalid_format" and p.field in needed)
    ]


def quarantine_problem(
    conn: Connection,
    ctx: RunContext,
    place: RecordPlace,
    problem: Problem,
    record: QuarantinedRecord,
    *,
    now: datetime | None = None,
) -> int:
    """Quarantine a record for one of its mapping problems (the dictionary's Chinese message).

    The payload is the canonical record (never the vendor object): the CLI and UI
    mask it by field name. With a content hash the entry is closed as fixed
    when the source changes; without, it waits for a person's release.
    """
    return store.quarantine_record(
        conn,
        ctx,
        store.QuarantineItem(
            place.direction,
            place.system,
            place.entity,
            place.source_id,
            problem.code,
            problem.message,
            field=problem.field,
            payload=record.payload,
            content_hash=record.content_hash,
            department=problem.department,
            data_owner=record.data_owner,
            dictionary_version=record.dictionary_version,
        ),
        now=now,
    )


def resolve_fixed(
    conn: Connection,
    ctx: RunContext,
    direction: str,
    entity: str,
    hashes: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> list[str]:
    """Close the open quarantine entries of records whose content hash changed; returns their ids.

    One query finds the open entries of the whole page; only those are compared.
    """
    if not hashes:
        return []
    entries = store.open_quarantine_for(conn, direction, entity, hashes)
    fixed: list[str] = []
    for source_id, entry in entries.items():
        new_hash = hashes.get(source_id)
        if new_hash is not None and store.resolve_if_fixed(
            conn, direction, entity, entry.source_id, new_hash, ctx=ctx, now=now
        ):
            fixed.append(source_id)
    return fixed


# ---------------------------------------------------------------- audit


@dataclass(frozen=True)
class AuditStamp:
    """What an audit entry says beside its outcome: a detail, and the dictionary and policy versions."""

    detail: str | None = None
    dictionary: Dictionary | None = None
    policy_version: str | None = None


def audit_event(
    operation: str,
    target: Target,
    record_ids: RecordIds,
    fields: FieldNames,
    outcome: str,
    stamp: AuditStamp | None,
) -> AuditEvent:
    """An audit entry (``target`` = system, entity) for :func:`bridge.hub.audit.record_many`: field *names*
    only, versions stamped."""
    stamp = stamp or AuditStamp()
    return audit.AuditEvent(
        operation=operation,
        system=target[0],
        entity=target[1],
        record_ids=dict(record_ids),
        fields=audit.field_names(fields),
        outcome=outcome,
        detail=stamp.detail,
        dictionary_version=stamp.dictionary.version if stamp.dictionary is not None else None,
        policy_version=stamp.policy_version,
    )


def write_audit(conn: Connection, ctx: RunContext, events: Sequence[AuditEvent]) -> list[int]:
    """Append the events in one chain update (nothing when empty)."""
    return audit.record_many(conn, ctx, list(events)) if events else []


# ---------------------------------------------------------------- run summaries


def summary_line(kind: str, counts: Mapping[str, int], api_calls: Mapping[str, Mapping[str, int]]) -> str:
    """One log line: the counts and the API calls per system (no ids, no values)."""
    parts = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    calls = " ".join(f"{system}_calls={sum(c.values())}" for system, c in sorted(api_calls.items()))
    return f"{kind}: {parts} {calls}".strip()


@dataclass(frozen=True)
class RunSummary:
    """A finished run's summary as :func:`store_run_summary` writes it."""

    kind: str
    status: str
    counts: Mapping[str, Any]
    watermarks: Mapping[str, Any] | None = None
    message: str | None = None


def store_run_summary(
    conn: Connection,
    ctx: RunContext,
    summary: RunSummary,
    *,
    started_at: datetime | None = None,
    now: datetime | None = None,
) -> int:
    """Write one finished run summary (``start_run`` + ``finish_run``); returns its id.

    ``summary.kind`` is a sync run kind of :mod:`bridge.runkinds`: data health and the
    report read exactly those spellings, so another one would be invisible.
    """
    if summary.kind not in (*runkinds.SYNC, *runkinds.STAGING):
        raise ValueError(
            f"run kind {summary.kind!r} is not a sync run kind of bridge.runkinds {runkinds.SYNC} "
            f"(nor a staging one {runkinds.STAGING})"
        )
    run_pk = store.start_run(conn, ctx, summary.kind, now=started_at or now)
    store.finish_run(
        conn, run_pk, summary.status, summary.counts, summary.watermarks, summary.message, now=now
    )
    return run_pk


@dataclass(frozen=True)
class Summary:
    """A direction's run summary: its run kind and which counter says an asset was updated."""

    kind: str
    asset_counters: Mapping[str, str]

    def store(
        self,
        hub: Engine,
        ctx: RunContext,
        parts: Mapping[str, Mapping[str, Any] | None],
        now: datetime,
        *,
        started_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Store and log a sync run's summary from its tasks' tallies (None: that task failed).

        Returns ``{status, counts, api_calls, updated}``; ``updated`` names the
        assets whose counter in ``asset_counters`` is positive (what to publish).
        """
        counts: Counter[str] = Counter()
        watermarks: dict[str, int] = {}
        failed = [name for name, part in parts.items() if part is None]
        for part in parts.values():
            tally = Tally.from_dict(part)
            counts.update(tally.counts)
            watermarks.update(tally.watermarks)
        calls = merge_api_calls(*(Tally.from_dict(part).api_calls for part in parts.values()))
        status = "failed" if failed else "success"
        message = f"failed tasks: {', '.join(failed)}" if failed else None
        stored: dict[str, Any] = dict(counts)
        stored["api_calls"] = sum(sum(c.values()) for c in calls.values())
        with hub.begin() as conn:
            store_run_summary(
                conn,
                ctx,
                RunSummary(
                    self.kind, status, {**stored, "api_calls_by_endpoint": calls}, watermarks, message
                ),
                started_at=started_at,
                now=now,
            )
        log.info("%s status=%s", summary_line(self.kind, counts, calls), status)
        updated = [name for name, counter in self.asset_counters.items() if counts.get(counter, 0) > 0]
        return {"status": status, "counts": dict(counts), "api_calls": calls, "updated": updated}


# ---------------------------------------------------------------- hub


def hub(url_or_engine: str | Engine | None = None) -> Engine:
    """The hub engine at head (``bridge_hub`` Connection by default)."""
    from bridge.hub import engine

    return engine.ensure_schema(url_or_engine)
