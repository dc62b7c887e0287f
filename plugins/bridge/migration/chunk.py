"""One chunk of the migration: extract → clean → validate → de-duplicate → link → load → archive.

Records stream in pages from the source (HubSpot search pages of 200, Feishu
instances one by one, read ahead by a reader thread) and are processed in batches of :data:`BATCH`
records, so memory is bounded by a batch, never by a chunk or a system.
Per batch:

1. **clean** — ``Dictionary.from_crm`` / ``from_oa`` (the dictionary's format
   rules); what changed is counted (``bridge.migration.clean``);
2. a record the dictionary calls ``hostile_input`` goes to quarantine as such;
3. **archive** — a record last modified before the cut-off is kept as it is in
   the hub (snapshot marked ``archived``) and goes no further;
4. **de-duplicate** (customers) — a record the run's de-duplication merged is
   stored marked: ``archived`` and ``_merged_into`` (its kept record) in the
   payload, so it stays findable but is not a second live customer; it is not
   validated (its data owners merge it in the CRM, they do not fix it);
5. **validate** — the data-health dictionary suite (``bridge.migration.gate``);
   a failing record goes to quarantine (``expectation_failed``, the expectation
   named) and is not loaded;
6. **link** (OA) — 立项申请 → deal (``deal_project``), expenses, trips and visits
   → company (``company_customer``, a merged company re-pointed to the kept
   one); an unknown customer goes to quarantine (``missing_customer_link``);
7. **load** — snapshots (``bridge.staging.snapshot_row``), quarantine entries,
   links, one transaction per batch. A record that passes now closes its old
   migration quarantine entry when its content changed since.

A dry run does all of it except the writes of step 7. Every write is an
upsert keyed by the record, so redoing a chunk (a retry, a cleared run, a
second migration) adds nothing twice.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, update

from bridge import people
from bridge.context import RunContext
from bridge.dictionary import Dictionary, MappingResult, Problem
from bridge.hooks import feishu_codec
from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import NotFoundError
from bridge.hooks.oa import OaHook
from bridge.hub import store
from bridge.hub.schema import snapshot
from bridge.migration import clean, dedupe, gate, runs, workdir
from bridge.migration.counts import EntityCounts
from bridge.migration.params import MigrationParams
from bridge.migration.survivors import live_ids, resolve_survivors
from bridge.permissions import Policy
from bridge.staging import INVALID_KEY, MERGED_KEY, snapshot_row
from bridge.sync.frame import resolve_fixed

log = logging.getLogger("bridge.migration")

DIRECTION = "migration"
BATCH = 10_000
READ_AHEAD = 500  # OA instance details read ahead of the batch work (memory: a few hundred small details)
READER_JOIN_SECONDS = 90.0  # longer than one OA call with its read timeout
RENEW_EVERY = 2_000  # OA instance reads between two renewals of the lease

PROJECT_LINK = "deal_project"
CUSTOMER_LINK = "company_customer"
CUSTOMER_FORMS = ("expense_claim", "travel_request", "visit_plan")
SOURCE = "migration"


@dataclass
class Tools:
    """What a chunk needs besides its hooks: dictionary, policy, hub, run and clock."""

    d: Dictionary
    policy: Policy
    hub: Engine
    ctx: RunContext
    params: MigrationParams
    run_id: str
    now: Callable[[], datetime]
    renew: Callable[[], None] = lambda: None
    data_dir: Path | None = None
    approval_codes: Mapping[str, str] = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return self.params.dry_run


@dataclass
class _Item:
    """One extracted record: its mapping result and how to find its source values."""

    result: MappingResult
    raw: clean.RawLookup
    fallback_ms: int = 0


@dataclass(frozen=True)
class OaChunk:
    """One chunk of OA instances: the form, its creation-time window ``[lo, hi]`` (ms, both inclusive), its number."""

    entity: str
    lo: int
    hi: int
    chunk_no: int = 0


@dataclass
class _Quarantine:
    source_id: str
    reason: str
    message: str
    field: str | None
    department: str | None
    row: store.SnapshotRow

    @classmethod
    def of(
        cls,
        row: store.SnapshotRow,
        reason: str,
        message: str,
        problem: Problem | None = None,
        *,
        field: str | None = None,
        department: str | None = None,
    ) -> _Quarantine:
        """A problem's own field and department win over the ones given."""
        return cls(
            row.source_id,
            reason,
            message,
            problem.field if problem else field,
            problem.department if problem else department,
            row,
        )


@dataclass
class _Batch:
    """What one batch will write."""

    load: list[store.SnapshotRow] = field(default_factory=list)
    archived: list[store.SnapshotRow] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    quarantine: list[_Quarantine] = field(default_factory=list)
    new_links: dict[str, list[store.NewLink]] = field(default_factory=dict)
    link_states: dict[int, dict[str, Any]] = field(default_factory=dict)
    relinks: list[tuple[str, store.NewLink]] = field(default_factory=list)


# ---------------------------------------------------------------- entry points


def migrate_crm_chunk(
    crm: CrmHook, t: Tools, entity: str, lo: int, hi: int, merges: Mapping[str, dedupe.Merge]
) -> EntityCounts:
    """Migrate the CRM records of ``entity`` modified in ``[lo, hi)``."""
    e = t.d.entity(entity)
    object_type = e.crm_object or entity
    counts = EntityCounts(entity)
    skipped_before = sum(crm.skipped.values()) if hasattr(crm, "skipped") else 0
    items: list[_Item] = []
    for page in crm.iter_changed(object_type, lo, t.d.crm_properties(entity), until=hi):
        associations: dict[str, dict[str, list[str]]] = {}
        for to_type in dict.fromkeys(e.associations.values()):
            found = crm.read_associations(object_type, to_type, [str(o.get("id")) for o in page])
            for oid, targets in found.items():
                associations.setdefault(oid, {})[to_type] = targets
        for obj in page:
            counts.read += 1
            oid = str(obj.get("id"))
            result = t.d.from_crm(entity, obj, associations.get(oid) if e.associations else None)
            items.append(_Item(result, clean.crm_raw(obj)))
        if len(items) >= BATCH:
            _process(t, entity, items, counts, merges=merges)
            items = []
    if items:
        _process(t, entity, items, counts, merges=merges)
    skipped_after = sum(crm.skipped.values()) if hasattr(crm, "skipped") else 0
    if skipped_after > skipped_before:
        counts.skipped["malformed_source_record"] += skipped_after - skipped_before
    return counts


def migrate_oa_chunk(
    oa: OaHook, crm: CrmHook | None, t: Tools, chunk: OaChunk, merges: Mapping[str, dedupe.Merge]
) -> EntityCounts:
    """Migrate the OA instances of one chunk (a form's instances created in a window)."""
    entity = chunk.entity
    code = t.approval_codes[entity]
    counts = EntityCounts(entity)
    items: list[_Item] = []
    project_rows: list[list[Any]] = []
    linker = _Linker(t, crm, entity, merges, project_rows)
    applicants: set[str] = set()
    for detail in _read_ahead(oa, code, chunk.lo, chunk.hi, counts):
        counts.read += 1
        applicants.add(feishu_codec.instance_applicant(detail))
        if counts.read % RENEW_EVERY == 0:
            t.renew()  # Feishu allows 50 reads/s: a batch can take minutes, the lease must not lapse
        fallback = feishu_codec.instance_start_ms(detail) or 0
        items.append(_Item(t.d.from_oa(entity, detail), clean.oa_raw(detail), fallback))
        if len(items) >= BATCH:
            _process(t, entity, items, counts, linker=linker)
            items = []
    if items:
        _process(t, entity, items, counts, linker=linker)
    if not t.dry_run:  # the reader thread is done: the hook is this thread's again
        people.learn_oa_names(oa, t.hub, applicants, now=t.now())
    if entity == "project_initiation":
        workdir.save_project_links(t.run_id, chunk.chunk_no, project_rows, t.data_dir)
    return counts


def _read_ahead(oa: OaHook, code: str, lo: int, hi: int, counts: EntityCounts) -> Iterator[dict[str, Any]]:
    """The details of the instances of ``code`` created in [lo, hi], in listing order.

    Feishu has no batch read: one ``get_instance`` per instance. A reader thread
    lists and reads up to :data:`READ_AHEAD` instances ahead while the caller
    cleans, validates and loads, so waiting for the OA overlaps with the work
    (memory stays bounded by the queue). Every call of ``oa`` is made by that
    one thread. An instance deleted between the listing and its read is counted
    (``gone_before_read``); any other error is raised here, in the caller."""
    ahead: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put((kind, value), timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in oa.iter_instance_refs(code, lo, hi):
                for ref in page:
                    instance_code = ref.code
                    try:
                        detail = oa.get_instance(instance_code)
                    except NotFoundError:
                        if not put("gone", instance_code):
                            return
                        continue
                    if not put("detail", detail):
                        return
        except BaseException as exc:  # handed to the caller, who raises it
            put("error", exc)
            return
        put("end", None)

    reader = threading.Thread(target=read, name=f"oa-read-ahead-{code}", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == "detail":
                yield value
            elif kind == "gone":
                counts.skipped["gone_before_read"] += 1  # deleted between the listing and the read
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        reader.join(timeout=READER_JOIN_SECONDS)
        if reader.is_alive():
            log.warning(
                "migration: the OA reader of %s is still waiting for an answer; left to finish alone", code
            )


# ---------------------------------------------------------------- one batch


def _masked_payload(t: Tools, entity: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The record for quarantine and report examples: canonical fields and offending values, masked by name."""
    out = {k: v for k, v in payload.items() if not k.startswith("_")}
    masked = t.policy.mask_all(entity, out)
    invalid = payload.get(INVALID_KEY)
    if isinstance(invalid, Mapping) and invalid:
        masked[INVALID_KEY] = t.policy.mask_all(entity, dict(invalid))
    return masked


def _process(
    t: Tools,
    entity: str,
    items: Sequence[_Item],
    counts: EntityCounts,
    *,
    merges: Mapping[str, dedupe.Merge] | None = None,
    linker: _Linker | None = None,
) -> None:
    t.renew()
    batch = _Batch()
    candidates = _screen(t, entity, items, counts, batch, merges or {})
    passing = _validate(t, entity, candidates, counts, batch)
    if linker is not None:
        passing = linker.link(passing, batch, counts)
    batch.load.extend(row for row, _ in passing)
    counts.written += len(passing)
    if not t.dry_run:
        _write(t, entity, batch)


def _screen(
    t: Tools,
    entity: str,
    items: Sequence[_Item],
    counts: EntityCounts,
    batch: _Batch,
    merges: Mapping[str, dedupe.Merge],
) -> list[tuple[store.SnapshotRow, MappingResult]]:
    """The records of a batch to validate; the others are skipped, quarantined (hostile input), archived
    (before the cut-off) or marked merged into the batch as they are met."""
    d = t.d
    e = d.entity(entity)
    candidates: list[tuple[store.SnapshotRow, MappingResult]] = []
    archive_before = t.params.archive_before_ms
    seen: set[str] = set()
    for item in items:
        result = item.result
        row = snapshot_row(d, entity, result, item.fallback_ms)
        if row is None:
            counts.skipped["no_id"] += 1
            continue
        if row.source_id in seen:  # the same record twice in one batch (edited while paging): once is enough
            counts.skipped["read_twice"] += 1
            continue
        seen.add(row.source_id)
        changed = clean.cleaned_fields(e, item.raw, result.record)
        if changed:
            counts.cleaned += 1
            counts.cleaned_fields.update(changed)
            counts.example("cleaned", {"id": row.source_id, "fields": changed})
        hostile = [p for p in result.problems if p.code == "hostile_input"]
        if hostile:
            _quarantine(
                t, entity, batch, counts, _Quarantine.of(row, hostile[0].code, hostile[0].message, hostile[0])
            )
            continue
        if archive_before is not None and row.source_modified_ms < archive_before:
            batch.archived.append(row)
            counts.archived += 1
            continue
        merge = merges.get(row.source_id)
        if (
            merge is not None
        ):  # a duplicate: kept findable (archived, marked), not validated as a live customer
            row.payload[MERGED_KEY] = merge.kept_id
            batch.load.append(row)
            batch.merged.append(row.source_id)
            counts.merged += 1
            counts.example("merged", {"id": row.source_id, "kept_id": merge.kept_id, "rule": merge.rule})
            continue
        candidates.append((row, result))
    return candidates


def _validate(
    t: Tools,
    entity: str,
    candidates: list[tuple[store.SnapshotRow, MappingResult]],
    counts: EntityCounts,
    batch: _Batch,
) -> list[tuple[store.SnapshotRow, MappingResult]]:
    """The candidates that pass the dictionary's checks; the others are quarantined with the reason."""
    e = t.d.entity(entity)
    failures = gate.validate(
        t.d, entity, [(row.source_id, row.data_owner, row.payload) for row, _ in candidates]
    )
    passing: list[tuple[store.SnapshotRow, MappingResult]] = []
    for row, result in candidates:
        failed = failures.get(row.source_id)
        if not failed:
            passing.append((row, result))
            continue
        field_name: str | None
        if entity in CUSTOMER_FORMS and {f.check_id for f in failed} == {f"{entity}.customer_id.required"}:
            applicant = row.data_owner or "?"
            message = (
                f"{e.label} {row.source_id}（申请人 {applicant}）没有填写关联客户，无法关联到 CRM 客户"
                f"（数据字典校验「{failed[0].label}」（{failed[0].check_id}）未通过）。请申请人 {applicant} "
                f"在 OA 中补填 CRM 客户编号（撤回后重新提交），然后重新运行历史迁移。"
            )
            reason, field_name = "missing_customer_link", "customer_id"
        else:
            message = gate.message(e.label, row.source_id, failed)
            reason, field_name = "expectation_failed", failed[0].field
        q = _Quarantine.of(row, reason, message, field=field_name, department=failed[0].department)
        _quarantine(t, entity, batch, counts, q)
    return passing


def _quarantine(t: Tools, entity: str, batch: _Batch, counts: EntityCounts, q: _Quarantine) -> None:
    batch.quarantine.append(q)
    counts.quarantined[q.reason] += 1
    counts.example(
        f"quarantined.{q.reason}",
        {
            "id": q.source_id,
            "field": q.field,
            "message": q.message,
            "record": _masked_payload(t, entity, q.row.payload),
        },
    )


def _write(t: Tools, entity: str, batch: _Batch) -> None:
    system = t.d.entity(entity).system
    now = t.now()
    with t.hub.begin() as conn:
        rows = [*batch.load, *batch.archived]
        if rows:
            store.upsert_snapshots(conn, system, entity, rows, now=now)
        merged = set(batch.merged)
        live = [r.source_id for r in batch.load if r.source_id not in merged]
        if live:
            _unarchive(conn, system, entity, live)
        if batch.archived:
            store.mark_archived(conn, system, entity, [r.source_id for r in batch.archived])
        if batch.merged:
            store.mark_archived(conn, system, entity, batch.merged)
        for q in batch.quarantine:
            store.quarantine_record(
                conn,
                t.ctx,
                store.QuarantineItem(
                    DIRECTION,
                    system,
                    entity,
                    q.source_id,
                    q.reason,
                    q.message,
                    field=q.field,
                    payload=_masked_payload(t, entity, q.row.payload),
                    content_hash=q.row.content_hash,
                    department=q.department,
                    data_owner=q.row.data_owner,
                    dictionary_version=t.d.version,
                ),
                now=now,
            )
        if batch.load:
            resolve_fixed(
                conn, t.ctx, DIRECTION, entity, {r.source_id: r.content_hash for r in batch.load}, now=now
            )
        for link_type, items in batch.new_links.items():
            store.add_links(conn, link_type, items, dictionary_version=t.d.version, run_id=t.run_id, now=now)
        if batch.link_states:
            store.set_link_states(
                conn, batch.link_states, dictionary_version=t.d.version, run_id=t.run_id, now=now
            )
        for link_type, item in batch.relinks:
            store.save_link(conn, link_type, item, dictionary_version=t.d.version, run_id=t.run_id, now=now)


def _unarchive(conn: Connection, system: str, entity: str, ids: Sequence[str]) -> None:
    """Records migrated live again (a later cut-off, or not merged any more) lose an old archived mark."""
    for start in range(0, len(ids), 500):
        conn.execute(
            update(snapshot)
            .where(
                snapshot.c.system == system,
                snapshot.c.entity == entity,
                snapshot.c.archived.is_(True),
                snapshot.c.source_id.in_(ids[start : start + 500]),
            )
            .values(archived=False)
        )


# ---------------------------------------------------------------- linking


def existing_ids(
    hub: Engine, crm: CrmHook | None, entity: str, object_type: str, ids: Iterable[str]
) -> set[str]:
    """Which of ``ids`` exist in the CRM: live hub snapshots first, the CRM (batch read) for the rest."""
    wanted = list(dict.fromkeys(i for i in ids if i))
    with hub.connect() as conn:
        found = live_ids(conn, entity, wanted)
    missing = [i for i in wanted if i not in found and i.isdigit()]
    if missing and crm is not None:
        found |= crm.existing_ids(object_type, missing)
    return found


@dataclass
class _Linker:
    """Links the OA instances of a batch to CRM deals and companies (decisions here, writes in ``_write``)."""

    t: Tools
    crm: CrmHook | None
    entity: str
    merges: Mapping[str, dedupe.Merge]
    project_rows: list[list[Any]]

    def link(
        self, passing: list[tuple[store.SnapshotRow, MappingResult]], batch: _Batch, counts: EntityCounts
    ) -> list[tuple[store.SnapshotRow, MappingResult]]:
        if self.entity == "project_initiation":
            self._projects(passing, batch, counts)
            return passing
        if self.entity in CUSTOMER_FORMS:
            return self._customers(passing, batch, counts)
        return passing

    def _projects(
        self, passing: list[tuple[store.SnapshotRow, MappingResult]], batch: _Batch, counts: EntityCounts
    ) -> None:
        t = self.t
        named = [str(r.record.get("deal_id") or "") for _, r in passing]
        deleted = workdir.load_deleted(t.run_id, "deal", t.data_dir)  # deleted or merged away in the CRM
        survivors = resolve_survivors(t.hub, self.crm, "deal", "deals", named, deleted)
        deals = existing_ids(t.hub, self.crm, "deal", "deals", [survivors.get(i, i) for i in named])
        deals -= deleted  # never linked to a deleted deal
        with t.hub.connect() as conn:
            linked = store.links_for_oa_ids(conn, PROJECT_LINK, [row.source_id for row, _ in passing])
        new: list[store.NewLink] = []
        for row, result in passing:
            rec = result.record
            named_id = str(rec.get("deal_id") or "")
            deal_id = survivors.get(named_id, named_id)
            if deal_id not in deals:
                counts.unlinked += 1
                counts.example(
                    "unlinked",
                    {
                        "id": row.source_id,
                        "deal_id": deal_id or None,
                        "message": f"立项申请 {row.source_id} 的 CRM商机编号「{deal_id or '（空）'}」"
                        f"在 CRM 中不存在：已导入，未关联。",
                    },
                )
                continue
            counts.linked += 1
            self.project_rows.append(
                [
                    deal_id,
                    row.source_id,
                    rec.get("project_no"),
                    rec.get("approval_status"),
                    rec.get("decided_at"),
                    rec.get("created_at"),
                ]
            )
            if any(lk.crm_id == deal_id for lk in linked.get(row.source_id, [])):
                continue  # linked before (by a sync or an earlier migration): its state is left as it is
            if deal_id != named_id:
                counts.example(
                    "relinked_to_survivor", {"id": row.source_id, "deal_id": named_id, "kept_id": deal_id}
                )
            new.append(_project_link(row.source_id, rec, deal_id, named_id))
        if new:
            batch.new_links.setdefault(PROJECT_LINK, []).extend(new)

    def _customers(
        self, passing: list[tuple[store.SnapshotRow, MappingResult]], batch: _Batch, counts: EntityCounts
    ) -> list[tuple[store.SnapshotRow, MappingResult]]:
        t = self.t
        raw_ids = [str(r.record.get("customer_id") or "") for _, r in passing]
        kept: dict[str, str] = {m: merge.kept_id for m, merge in self.merges.items()}
        unknown = [i for i in raw_ids if i and i not in kept]
        deleted = workdir.load_deleted(t.run_id, "company", t.data_dir)  # deleted or merged away in the CRM
        # merged by an earlier run's de-duplication, or merged in the CRM (merge_record or the CRM itself)
        kept.update(resolve_survivors(t.hub, self.crm, "company", "companies", unknown, deleted))
        with t.hub.connect() as conn:
            linked = store.links_for_oa_ids(conn, CUSTOMER_LINK, [row.source_id for row, _ in passing])
        targets = {i: kept.get(i, i) for i in raw_ids if i}
        companies = existing_ids(t.hub, self.crm, "company", "companies", targets.values())
        companies -= deleted
        out: list[tuple[store.SnapshotRow, MappingResult]] = []
        label = t.d.entity(self.entity).label
        for row, result in passing:
            rec = result.record
            raw = str(rec.get("customer_id") or "")
            company = targets.get(raw)
            if company is None or company not in companies:
                applicant = row.data_owner or "?"
                message = (
                    f"{label} {row.source_id}（申请人 {applicant}）的关联客户「{raw}」在 CRM 中不存在，"
                    f"无法关联到客户；该记录未导入中枢库。请申请人 {applicant} 核对客户编号（撤回后重新提交），"
                    f"若客户尚未建档请销售部先在 CRM 中创建，然后重新运行历史迁移。"
                )
                _quarantine(
                    t,
                    self.entity,
                    batch,
                    counts,
                    _Quarantine.of(
                        row, "missing_customer_link", message, field="customer_id", department="sales"
                    ),
                )
                continue
            counts.linked += 1
            state: dict[str, Any] = {
                "customer_id": raw,
                "project_no": rec.get("project_no"),
                "source": SOURCE,
            }
            if company != raw:
                state["merged_from"] = raw
                counts.example(
                    "relinked_to_kept", {"id": row.source_id, "customer_id": raw, "kept_id": company}
                )
            item = store.NewLink(
                crm_type="company", crm_id=company, oa_type=self.entity, oa_id=row.source_id, state=state
            )
            _customer_link(batch, linked.get(row.source_id, []), item)
            out.append((row, result))
        return out


def _customer_link(batch: _Batch, existing: Sequence[store.Link], item: store.NewLink) -> None:
    """The instance's customer link into the batch: kept, its state updated, moved, or new."""
    same = next((lk for lk in existing if lk.crm_id == item.crm_id), None)
    state = dict(item.state or {})
    if same is not None:
        if (same.state or {}) != state:
            batch.link_states[same.id] = state
    elif existing:
        batch.relinks.append((CUSTOMER_LINK, item))
    else:
        batch.new_links.setdefault(CUSTOMER_LINK, []).append(item)


def _project_link(oa_id: str, rec: Mapping[str, Any], deal_id: str, named_id: str) -> store.NewLink:
    """The ``deal_project`` link of a migrated 立项申请 (to the survivor when it names a merged-away deal)."""
    # amount_sent: the amount the 立项申请 carries, so the CRM → OA sync notices the next contract-amount
    # change of this deal.
    state: dict[str, Any] = {
        "phase": "created",
        "project_no": rec.get("project_no"),
        "amount_sent": rec.get("contract_amount"),
        "notices": 0,
        "approval_status": rec.get("approval_status"),
        "source": SOURCE,
    }
    if named_id != deal_id:
        state["merged_from"] = named_id
    return store.NewLink(
        crm_type="deal", crm_id=deal_id, oa_type="project_initiation", oa_id=oa_id, state=state
    )


# ---------------------------------------------------------------- chunk runner


def run_chunk(t: Tools, entity: str, chunk_no: int, work: Callable[[], EntityCounts]) -> EntityCounts:
    """Do a planned chunk unless it is done already; record its counts (also in a dry run)."""
    with t.hub.connect() as conn:
        planned = runs.get_chunk(conn, t.run_id, entity, chunk_no)
    if planned is None:
        raise LookupError(f"chunk {entity}#{chunk_no} is not in the plan of run {t.run_id}")
    if planned.done:
        log.info("migration %s: chunk %s#%d already done, skipped", t.run_id, entity, chunk_no)
        return EntityCounts.from_stored(entity, planned.counts, planned.examples)
    try:
        counts = work()
    except Exception as exc:
        with t.hub.begin() as conn:
            runs.fail_chunk(conn, t.run_id, entity, chunk_no, f"{type(exc).__name__}: {exc}", t.now())
        raise
    with t.hub.begin() as conn:
        runs.complete_chunk(conn, t.run_id, entity, chunk_no, counts.as_counts(), counts.examples, t.now())
    log.info(
        "migration %s: chunk %s#%d done: read %d, written %d, quarantined %d",
        t.run_id,
        entity,
        chunk_no,
        counts.read,
        counts.written,
        counts.quarantined_total,
    )
    return counts
