"""The steps of one migration run, without Airflow: what each DAG task calls, and what tests and the bench call.

::

    m = Migration.create(run_id)                       # hub, dictionary, policy, approval codes
    plan = start(m, params, crm, oa)                  # lease, migration_run, chunks (reused on resume)
    dedupe(m, crm)                                    # customers: merge decisions (+ merge_record)
    for refs in plan["crm_groups"]: crm_group(m, crm, refs)      # one mapped task per group of chunks
    for refs in plan["oa_groups"]:  oa_group(m, oa, crm, refs)
    writeback(m, crm)                                 # deals ← their 立项申请
    finish(m)                                         # report files, migration_run, lease released
    close(m, why)                                     # teardown: an unfinished run is aborted, lease released

:func:`run_all` does exactly that in one process. Each step takes or renews the
lease for its run first, so a second migration fails fast with a Chinese
message (:class:`~bridge.migration.runs.MigrationLocked`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bridge.context import RunContext, configured_principal
from bridge.dictionary import Dictionary
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.migration import attachments, lifecycle, runs, workdir
from bridge.migration import dedupe as dedupe_mod
from bridge.migration import plan as plan_mod
from bridge.migration import report as report_mod
from bridge.migration.chunk import OaChunk, Tools, migrate_crm_chunk, migrate_oa_chunk, run_chunk
from bridge.migration.counts import EntityCounts
from bridge.migration.params import MigrationParams
from bridge.migration.writeback import write_back
from bridge.permissions import Policy

log = logging.getLogger("bridge.migration")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Migration:
    """One run's fixed context: hub, dictionary, policy, who acts, where files go."""

    hub: Engine
    d: Dictionary
    policy: Policy
    ctx: RunContext
    run_id: str
    approval_codes: Mapping[str, str]
    data_dir: Path | None = None
    now: Callable[[], datetime] = _now
    run_state: runs.RunState | None = (
        None  # Airflow's view of another run (lease take-over); None outside Airflow
    )
    _params: MigrationParams | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        run_id: str,
        ctx: RunContext | None = None,
        *,
        hub: Engine | None = None,
        data_dir: Path | None = None,
        now: Callable[[], datetime] = _now,
    ) -> Migration:
        import bridge.dictionary
        from bridge import permissions, settings
        from bridge.hub import engine
        from bridge.sync.common import approval_codes

        d = bridge.dictionary.load()
        ctx = ctx or RunContext(
            dag_id="history_migration",
            run_id=run_id,
            task_id=None,
            try_number=None,
            principal=configured_principal(),
        )
        return cls(
            hub=engine.ensure_schema(hub),
            d=d,
            policy=permissions.load(dictionary=d),
            ctx=ctx,
            run_id=run_id,
            approval_codes=approval_codes(settings.load()),
            data_dir=data_dir,
            now=now,
        )

    def params(self) -> MigrationParams:
        """The parameters the run was planned with (from ``migration_run``)."""
        if self._params is None:
            with self.hub.connect() as conn:
                row = runs.get_run(conn, self.run_id)
            if row is None:
                raise LookupError(f"migration run {self.run_id} was not started (no migration_run row)")
            self._params = MigrationParams.from_stored(row["params"])
        return self._params

    def tools(self) -> Tools:
        return Tools(
            d=self.d,
            policy=self.policy,
            hub=self.hub,
            ctx=self.ctx,
            params=self.params(),
            run_id=self.run_id,
            now=self.now,
            renew=self.renew,
            data_dir=self.data_dir,
            approval_codes=self.approval_codes,
        )

    def renew(self) -> None:
        runs.renew_lease(self.hub, self.run_id, self.now(), run_state=self.run_state)


def _calls(hook: Any) -> int:
    if hook is None:
        return 0
    return sum(
        n for endpoint, n in hook.api_calls.items() if "/oauth/" not in endpoint and "/auth/" not in endpoint
    )


def start(
    m: Migration, raw_params: Mapping[str, Any], crm: CrmHook | None, oa: OaHook | None
) -> dict[str, Any]:
    """Lease, ``migration_run`` and the plan; a run seen before (cleared, crashed) keeps its plan and parameters."""
    now = m.now()
    params = MigrationParams.from_mapping(raw_params, now)  # a typo fails here, before the lease is taken
    runs.take_lease(m.hub, m.run_id, now, run_state=m.run_state)
    with m.hub.begin() as conn:
        stored, resumed = runs.begin_run(
            conn, m.run_id, {**params.as_dict(), "requested": dict(raw_params)}, now
        )
        chunks = runs.planned(conn, m.run_id)
    m._params = MigrationParams.from_stored(stored)
    if not chunks:
        planned = plan_mod.plan_chunks(m._params, m.d, m.approval_codes, crm, oa)
        with m.hub.begin() as conn:
            if not runs.planned(conn, m.run_id):  # a retried plan task after a commit: keep the first plan
                runs.save_plan(conn, m.run_id, planned)
            chunks = runs.planned(conn, m.run_id)
    done = sum(1 for c in chunks if c.done)
    log.info(
        "migration %s: %s, %d chunks (%d done), dry run %s",
        m.run_id,
        "resumed" if resumed else "planned",
        len(chunks),
        done,
        m._params.dry_run,
    )
    crm_refs = [c.ref() for c in chunks if c.entity in m._params.crm_entities]
    oa_refs = [c.ref() for c in chunks if c.entity in m._params.oa_entities]
    order = {e: i for i, e in enumerate(m._params.entities)}
    crm_refs.sort(key=lambda r: (order[r["entity"]], r["chunk_no"]))
    oa_refs.sort(key=lambda r: (order[r["entity"]], r["chunk_no"]))
    size = m._params.chunk_size
    return {
        "crm_chunks": crm_refs,
        "oa_chunks": oa_refs,
        "crm_groups": plan_mod.group_chunks(crm_refs, size),
        "oa_groups": plan_mod.group_chunks(oa_refs, size),
        "dry_run": m._params.dry_run,
        "resumed": resumed,
        "chunks": len(chunks),
        "done": done,
    }


def merges_of(m: Migration) -> dict[str, dedupe_mod.Merge]:
    """The run's merge decisions by merged id (empty when customers are not migrated)."""
    return {x.merged_id: x for x in dedupe_mod.load(workdir.merges_file(m.run_id, m.data_dir))}


def dedupe(m: Migration, crm: CrmHook) -> dict[str, Any]:
    """Step ``dedupe.company``: scan every customer, decide the merges, record them (not in a dry run)."""
    t = m.tools()
    p = t.params
    if "company" not in p.entities:
        return {"merged": 0}

    def work() -> EntityCounts:
        before = _calls(crm)
        index = dedupe_mod.CustomerIndex()
        for page in crm.iter_changed_records("companies", 0, dedupe_mod.SCAN_PROPERTIES, until=p.to_ms):
            dedupe_mod.index_page(index, page)
            m.renew()
        pairs = index.merges(p.crm_from_ms, p.to_ms)
        ids = list(dict.fromkeys(i for kept, merged, _ in pairs for i in (kept, merged)))
        objects = (
            {
                o.key: (o.object or {}).get("properties") or {}
                for o in crm.batch_read("companies", ids, properties=["name", "uscc"])
                if o.ok
            }
            if ids
            else {}
        )
        merges = dedupe_mod.describe(pairs, objects)
        dedupe_mod.save(workdir.merges_file(m.run_id, m.data_dir), merges)
        if not p.dry_run:
            with m.hub.begin() as conn:
                dedupe_mod.record_merges(conn, m.run_id, "company", merges, m.now())
        counts = EntityCounts("company", read=len(index), merged=len(merges))
        counts.api_calls["crm"] += _calls(crm) - before
        log.info(
            "migration %s: %d customers scanned (%d bytes of keys), %d merges",
            m.run_id,
            len(index),
            index.bytes_used(),
            len(merges),
        )
        return counts

    counts = run_chunk(t, runs.DEDUPE_STEP, 0, work)
    return {"scanned": counts.read, "merged": counts.merged}


def crm_chunk(m: Migration, crm: CrmHook, ref: Mapping[str, Any]) -> dict[str, Any]:
    t = m.tools()
    m.renew()
    merges = merges_of(m) if ref["entity"] == "company" else {}

    def work() -> EntityCounts:
        before = _calls(crm)
        if ref["lo"] is None:  # the entity's records archived or merged away in the CRM (no time range)
            counts = lifecycle.migrate_archived_chunk(crm, t, ref["entity"])
        else:
            counts = migrate_crm_chunk(crm, t, ref["entity"], int(ref["lo"]), int(ref["hi"]), merges)
            if ref["entity"] == "deal":  # the Param ``attachments``: contract files recorded in the hub
                attachments.migrate_deal_files(crm, t, (int(ref["lo"]), int(ref["hi"])), counts)
        counts.api_calls["crm"] += _calls(crm) - before
        return counts

    return run_chunk(t, ref["entity"], int(ref["chunk_no"]), work).as_counts()


def oa_chunk(m: Migration, oa: OaHook, crm: CrmHook | None, ref: Mapping[str, Any]) -> dict[str, Any]:
    t = m.tools()
    m.renew()
    merges = merges_of(m)

    def work() -> EntityCounts:
        before_oa, before_crm = _calls(oa), _calls(crm)
        chunk = OaChunk(ref["entity"], int(ref["lo"]), int(ref["hi"]), int(ref["chunk_no"]))
        counts = migrate_oa_chunk(oa, crm, t, chunk, merges)
        attachments.migrate_files(oa, crm, t, chunk, counts)  # the Param ``attachments``
        counts.api_calls["oa"] += _calls(oa) - before_oa
        counts.api_calls["crm"] += _calls(crm) - before_crm
        return counts

    return run_chunk(t, ref["entity"], int(ref["chunk_no"]), work).as_counts()


def crm_group(m: Migration, crm: CrmHook, refs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The CRM chunks of one mapped task, one after the other."""
    return [crm_chunk(m, crm, ref) for ref in refs]


def oa_group(
    m: Migration, oa: OaHook, crm: CrmHook | None, refs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The OA chunks of one mapped task, one after the other."""
    return [oa_chunk(m, oa, crm, ref) for ref in refs]


def writeback(m: Migration, crm: CrmHook) -> dict[str, Any]:
    """Step ``writeback.deal``: the chosen 立项申请 of each linked deal into the CRM (counted in a dry run)."""
    t = m.tools()
    if "project_initiation" not in t.params.entities:
        return {"written_back": 0}
    m.renew()

    def work() -> EntityCounts:
        before = _calls(crm)
        counts = write_back(crm, t)
        counts.api_calls["crm"] += _calls(crm) - before
        return counts

    return run_chunk(t, runs.WRITEBACK_STEP, 0, work).as_counts()


def finish(m: Migration) -> dict[str, Any]:
    """Write the report, close ``migration_run`` (success only when every chunk is done), release the lease."""
    now = m.now()
    params = m.params()
    with m.hub.connect() as conn:
        chunks = runs.planned(conn, m.run_id)
        row = runs.get_run(conn, m.run_id)
    complete = all(c.done for c in chunks)
    status = "success" if complete else "failed"
    merges = dedupe_mod.load(workdir.merges_file(m.run_id, m.data_dir))
    report = report_mod.collect(
        m.run_id, params, chunks, merges, status, row["started_at"] if row else None, now
    )
    html_path, csv_path = report_mod.write(report, m.d, m.policy, m.data_dir)
    counts = report_mod.summary_counts(report)
    with m.hub.begin() as conn:
        runs.finish_run(
            conn,
            m.run_id,
            status,
            counts,
            report_html=workdir.relative(html_path, m.data_dir),
            report_csv=workdir.relative(csv_path, m.data_dir),
            now=now,
        )
    if complete:
        runs.release_lease(m.hub, m.run_id)
    log.info("migration %s: %s; report %s", m.run_id, status, html_path)
    api: Counter[str] = Counter()
    for c in report.entities:
        api.update(c.api_calls)
    return {
        "status": status,
        "counts": counts,
        "report_html": str(html_path),
        "report_csv": str(csv_path),
        "unfinished": [f"{c.entity}#{c.chunk_no}" for c in report.unfinished],
        "api_calls": dict(api),
    }


def close(m: Migration, airflow_why: str | None = None) -> dict[str, Any]:
    """The teardown: a run that ended unfinished is marked ``aborted`` (when, why) and its lease released.

    ``airflow_why`` is what Airflow knows (tasks failed, run marked failed); the first failed chunk's
    error from the hub is added. A successful run is left as it is; a run that never started (refused at
    ``plan``) has no row and holds no lease of its own.
    """
    now = m.now()
    with m.hub.begin() as conn:
        row = runs.get_run(conn, m.run_id)
        if row is None:
            return {"status": "not_started", "released": False}
        why = row["status"] != "success" and _why(conn, m.run_id, airflow_why)
        if why:
            runs.abort_run(conn, m.run_id, why, now)
    released = runs.release_lease(m.hub, m.run_id)
    status = "success" if not why else runs.ABORTED
    if why:
        log.warning("migration %s aborted: %s", m.run_id, why)
    return {"status": status, "released": released, "why": why or None}


def _why(conn: Any, run_id: str, airflow_why: str | None) -> str:
    chunks = runs.planned(conn, run_id)
    unfinished = [c for c in chunks if not c.done]
    failed = [c for c in unfinished if c.status == "failed"]
    parts = [airflow_why or "运行在完成前结束（任务失败或在 Airflow 中被标记为失败）。"]
    if unfinished:
        parts.append(f"{len(unfinished)}/{len(chunks)} 个批次或步骤未完成。")
    if failed:
        error = str((failed[0].examples or {}).get("error") or "")[:300]
        parts.append(f"首个失败的批次 {failed[0].entity} #{failed[0].chunk_no}：{error}")
    return "".join(parts)


def run_all(m: Migration, raw_params: Mapping[str, Any], crm: CrmHook, oa: OaHook) -> dict[str, Any]:
    """The whole run in this process, in the DAG's order (tests, the bench, one-off use)."""
    plan = start(m, raw_params, crm, oa)
    dedupe(m, crm)
    for refs in plan["crm_groups"]:
        crm_group(m, crm, refs)
    for refs in plan["oa_groups"]:
        oa_group(m, oa, crm, refs)
    writeback(m, crm)
    return finish(m)
