"""What both sync directions share: settings, run summaries, quarantine, audit, assets, uuids.

Everything here is either pure or takes a SQLAlchemy ``Connection`` whose
transaction the caller owns, like :mod:`bridge.hub.store`. The OA → CRM sync
(``bridge.sync.oa_to_crm``) reuses these helpers so both directions count,
quarantine, audit and summarise the same way.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from bridge import audit, runkinds
from bridge import settings as bridge_settings
from bridge.context import RunContext
from bridge.dictionary import Dictionary, Problem
from bridge.hub import store
from bridge.settings_model import DebounceSection, OaSection, Section

log = logging.getLogger("bridge.sync")

# Sync directions (watermarks, pending changes, quarantine, settings); the run kinds of
# run_summary are another spelling, in bridge.runkinds.
CRM_TO_OA = "crm_to_oa"
OA_TO_CRM = "oa_to_crm"

# Problems that stop a record from being sent: the target would get a wrong or
# empty value. ``invalid_format`` is blocking only on fields the target needs.
ALWAYS_BLOCKING = frozenset({"missing_required", "unmapped_value", "hostile_input"})
# The namespace of the bridge's idempotency uuids (uuid5 of purpose, record and version).
UUID_NAMESPACE = uuid.UUID("4b7c2f0e-9a51-5d3e-8c6a-b1d9e0f4a7c3")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SyncSettingsError(ValueError):
    """A setting the sync needs is missing or unusable; the message names the key."""


SectionT = TypeVar("SectionT", bound=Section)


# ---------------------------------------------------------------- settings


def section(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One section of ``include/settings.yaml`` (empty when absent)."""
    value = settings.get(name) or {}
    if not isinstance(value, Mapping):
        raise SyncSettingsError(f"include/settings.yaml: {name} must be a section (key: value), not {value!r}")
    return dict(value)


def typed_section(settings: Mapping[str, Any], name: str, model: type[SectionT]) -> SectionT:
    """One section of ``include/settings.yaml`` as its typed model (:mod:`bridge.settings_model`)."""
    try:
        return bridge_settings.section_of(settings, name, model)
    except bridge_settings.SettingsError as exc:
        raise SyncSettingsError(str(exc)) from exc


def number(values: Mapping[str, Any], key: str, default: float, where: str, minimum: float = 0) -> float:
    """A numeric setting with its default; refuses text and values below ``minimum``."""
    raw = values.get(key, default)
    if raw is None:
        raw = default
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise SyncSettingsError(f"include/settings.yaml: {where}.{key} must be a number, not {raw!r}")
    if raw < minimum:
        raise SyncSettingsError(f"include/settings.yaml: {where}.{key} must be ≥ {minimum}, not {raw!r}")
    return float(raw)


@dataclass(frozen=True)
class DebounceSettings:
    """The debounce window: quiet for ``quiet_seconds``, never longer than ``max_delay_seconds``."""

    quiet_seconds: float = 60
    max_delay_seconds: float = 150

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DebounceSettings:
        values = typed_section(settings, "debounce", DebounceSection)
        return cls(quiet_seconds=values.quiet_seconds, max_delay_seconds=values.max_delay_seconds)


def approval_codes(settings: Mapping[str, Any]) -> dict[str, str]:
    """``oa.approval_codes``: form name → the tenant's approval code."""
    return typed_section(settings, "oa", OaSection).codes()


def approval_code(settings: Mapping[str, Any], form: str) -> str:
    code = approval_codes(settings).get(form)
    if not code:
        raise SyncSettingsError(
            f"include/settings.yaml: oa.approval_codes.{form} is not set: add the tenant's approval code "
            f"of the form {form} (Feishu admin console → approval → the definition's code)"
        )
    return code


# ---------------------------------------------------------------- time


def to_ms(at: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return (at - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


# ---------------------------------------------------------------- idempotency


def idempotency_uuid(record_id: str, purpose: str, dictionary_version: str, *parts: object) -> str:
    """The Feishu ``uuid`` of a create: the same record, purpose, version and parts give the same uuid.

    A rerun of a crashed or cleared task sends the same uuid, so the OA refuses
    a second instance (60012) and the hook reads back the first one. Parts
    distinguish repeated writes of one purpose (e.g. the notice number and the
    new amount of a contract-amount notice).
    """
    name = "|".join([purpose, str(record_id), dictionary_version, *(str(p) for p in parts)])
    return str(uuid.uuid5(UUID_NAMESPACE, name))


# ---------------------------------------------------------------- assets


def asset_uri(system: str, entity: str) -> str:
    """The Airflow Asset URI of an entity the bridge writes, e.g. ``bridge://oa/project_initiation``."""
    return f"bridge://{system}/{entity}"


# ---------------------------------------------------------------- API call counts


class CountsCalls(Protocol):
    api_calls: Counter[str]


def api_calls_of(**hooks: CountsCalls | None) -> dict[str, dict[str, int]]:
    """``{"crm": {endpoint: calls}, "oa": {...}}`` from the hooks' counters (for summaries and XCom)."""
    return {name: dict(sorted(hook.api_calls.items())) for name, hook in hooks.items() if hook is not None}


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


# ---------------------------------------------------------------- run summaries


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
        return {"counts": dict(sorted(self.counts.items())), "watermarks": dict(self.watermarks),
                "api_calls": self.api_calls}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Tally:
        data = data or {}
        return cls(
            counts=Counter({str(k): int(v) for k, v in (data.get("counts") or {}).items()}),
            watermarks={str(k): int(v) for k, v in (data.get("watermarks") or {}).items()},
            api_calls={str(s): {str(e): int(n) for e, n in c.items()} for s, c in (data.get("api_calls") or {}).items()},
        )


def summary_line(kind: str, counts: Mapping[str, int], api_calls: Mapping[str, Mapping[str, int]]) -> str:
    """One log line: the counts and the API calls per system (no ids, no values)."""
    parts = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    calls = " ".join(f"{system}_calls={sum(c.values())}" for system, c in sorted(api_calls.items()))
    return f"{kind}: {parts} {calls}".strip()


def store_run_summary(
    conn: Connection,
    ctx: RunContext,
    kind: str,
    status: str,
    counts: Mapping[str, Any],
    *,
    watermarks: Mapping[str, Any] | None = None,
    message: str | None = None,
    started_at: datetime | None = None,
    now: datetime | None = None,
) -> int:
    """Write one finished run summary (``start_run`` + ``finish_run``); returns its id.

    ``kind`` is a sync run kind of :mod:`bridge.runkinds`: data health and the
    report read exactly those spellings, so another one would be invisible.
    """
    if kind not in runkinds.SYNC:
        raise ValueError(f"run kind {kind!r} is not a sync run kind of bridge.runkinds {runkinds.SYNC}")
    run_pk = store.start_run(conn, ctx, kind, now=started_at or now)
    store.finish_run(conn, run_pk, status, counts, watermarks, message, now=now)
    return run_pk


def summarise_run(
    hub: Engine,
    ctx: RunContext,
    kind: str,
    parts: Mapping[str, Mapping[str, Any] | None],
    now: datetime,
    asset_counters: Mapping[str, str],
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
        store_run_summary(conn, ctx, kind, status, {**stored, "api_calls_by_endpoint": calls},
                          watermarks=watermarks, message=message, started_at=started_at, now=now)
    log.info("%s status=%s", summary_line(kind, counts, calls), status)
    updated = [name for name, counter in asset_counters.items() if counts.get(counter, 0) > 0]
    return {"status": status, "counts": dict(counts), "api_calls": calls, "updated": updated}


# ---------------------------------------------------------------- xref


links_for_oa_ids = store.links_for_oa_ids  # re-exported: the syncs import it from here


# ---------------------------------------------------------------- quarantine


def blocking_problems(problems: Iterable[Problem], needed_fields: Iterable[str] = ()) -> list[Problem]:
    """The problems that stop a record from being sent (see ``ALWAYS_BLOCKING``).

    ``invalid_format`` blocks only on a field the target needs (``needed_fields``):
    elsewhere the value is staged as missing and reported by the data-health suites.
    """
    needed = set(needed_fields)
    return [
        p for p in problems
        if p.code in ALWAYS_BLOCKING or (p.code == "invalid_format" and p.field in needed)
    ]


def quarantine_problem(
    conn: Connection,
    ctx: RunContext,
    direction: str,
    system: str,
    entity: str,
    source_id: str,
    problem: Problem,
    payload: Mapping[str, Any] | None,
    content_hash: str | None,
    *,
    data_owner: str | None = None,
    dictionary_version: str | None = None,
    now: datetime | None = None,
) -> int:
    """Quarantine a record for one of its mapping problems (the dictionary's Chinese message).

    ``payload`` is the canonical record (never the vendor object): the CLI and UI
    mask it by field name. With ``content_hash`` the entry is closed as fixed
    when the source changes; without, it waits for a person's release.
    """
    return store.quarantine_record(conn, ctx, store.QuarantineItem(direction, system, entity, source_id, problem.code, problem.message, field=problem.field, payload=payload, content_hash=content_hash, department=problem.department, data_owner=data_owner, dictionary_version=dictionary_version), now=now)


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


def audit_event(
    operation: str,
    system: str,
    entity: str,
    record_ids: Mapping[str, Any],
    fields: Iterable[str] | Mapping[str, Any],
    outcome: str,
    *,
    detail: str | None = None,
    dictionary: Dictionary | None = None,
    policy_version: str | None = None,
) -> audit.AuditEvent:
    """An audit entry for :func:`bridge.audit.record_many`: field *names* only, versions stamped."""
    return audit.AuditEvent(
        operation=operation,
        system=system,
        entity=entity,
        record_ids=dict(record_ids),
        fields=audit.field_names(fields),
        outcome=outcome,
        detail=detail,
        dictionary_version=dictionary.version if dictionary is not None else None,
        policy_version=policy_version,
    )


def write_audit(conn: Connection, ctx: RunContext, events: Sequence[audit.AuditEvent]) -> list[int]:
    """Append the events in one chain update (nothing when empty)."""
    return audit.record_many(conn, ctx, list(events)) if events else []


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


def exclusive_load(hub: Engine, direction: str, ctx: RunContext, now: datetime, work: Callable[[], Tally]) -> Tally:
    """Run ``work`` (a direction's load) holding the direction's lease, so that loads of one direction never
    overlap (a manual run overlapping the scheduled one, a zombie task). A load that finds the lease taken
    writes nothing and leaves the due changes to the holder: its tally says ``skipped_other_load``."""
    with _load_lease(hub, direction, ctx, now) as other:
        if other is None:
            return work()
    log.warning("%s load: another run (%s) is loading; its due changes are left to it", direction, other.holder)
    tally = Tally()
    tally.add("skipped_other_load")
    return tally


# ---------------------------------------------------------------- hub


def hub(url_or_engine: str | Engine | None = None) -> Engine:
    """The hub engine at head (``bridge_hub`` Connection by default)."""
    from bridge.hub import engine

    return engine.ensure_schema(url_or_engine)
