"""
### 历史迁移 history_migration — clean, de-duplicate, validate, link and load the history

Triggered by hand (**Trigger** → Params form, Chinese labels): which data
(CRM 客户/联系人/商机, OA 立项申请/费用报销/差旅申请/客户拜访计划), a date range, an
archive cut-off, what to do with the records deleted in the CRM (`archived_records`:
migrate them as archived, default, or skip and count them; ids merged away in
the CRM always resolve to the survivor), the chunk size and **试运行 (dry run, on by default)**: everything
but the writes, with the full report. A real load needs 试运行 off **and**
`confirm_load` = 确认正式迁移. A value outside its schema (chunk size out of
20–200000, a malformed date, any other confirmation text) is refused by Airflow
before a run is created; `plan` checks everything again (a CLI/API conf) and
fails fast with the field, the value and what is allowed. How to run it, what
each parameter means and how to read the report: `docs/migration.md`.

| task | pool | what |
|---|---|---|
| `plan` | `crm_api` | takes the `history_migration` lease (a second migration fails here with a Chinese message), records `migration_run`, splits each entity into chunks of about `chunk_size` records (`migration_chunk`); a cleared run keeps its plan |
| `crm_chunk_list`, `oa_chunk_list` | – | the plan's chunks in groups (what the mapped tasks expand over): one chunk per task, or a few small ones of fewer than `chunk_size` records together (each task process loads Great Expectations once) |
| `dedupe_customers` | `crm_api` | scans every CRM customer (compact keys) and decides the merges: same 统一社会信用代码, then normalised name + compatible credit code; `merge_record` |
| `migrate_crm_chunk` (mapped) | `crm_api` | one chunk of companies, contacts or deals: extract → clean → validate (GX dictionary suite) → merge → load; quarantine, archive. Per entity one more chunk without a range: its records deleted or merged away in the CRM (the archived list) |
| `migrate_oa_chunk` (mapped) | `oa_api` | one chunk of an OA form: the same, plus the links 立项申请 → deal, 报销/差旅/拜访 → customer (`xref`) |
| `write_back` | `crm_api` | each linked deal gets its 立项申请's instance code, project number, approval status, decision time and project stage, where the CRM lacks them |
| `report` | – | HTML + CSV report under `<BRIDGE_DATA_DIR>/migration/<run>/`, totals in `migration_run`, lease released; fails (after writing the report) if a chunk is missing |
| `close_run` (teardown) | – | runs after `report` whatever happened, also when a person marks the run failed: an unfinished run is marked 已中止 (when, why) and the lease is released at once |

**Resumable.** A chunk is the unit of restart: clearing a failed task (or the
whole run) continues after the last completed chunk; done chunks are skipped.
Every write is an upsert keyed by the record, so rerunning — a retry, a cleared
run or a new migration — creates no duplicate snapshot, link, merge or
quarantine entry. `max_active_runs=1` plus the hub lease keep two migrations
from running at once. Memory stays bounded: records stream page by page and
are processed in batches of 10,000.

`schedule=None`: history is migrated when IT decides, not on a timetable.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import Param, dag, get_current_context, task, teardown

from bridge.migration.params import PARAM_SPECS

default_args = {
    "owner": "bridge-migration",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(hours=3),
}


def _label(refs: list[dict[str, Any]]) -> None:
    """Names a mapped task instance after its chunks in the UI (``map_index_template``)."""
    from bridge.migration import tasks

    get_current_context()["chunk_label"] = tasks.label(refs)  # type: ignore[index]


@dag(
    dag_id="history_migration",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["bridge", "migration", "crm", "oa"],
    default_args=default_args,
    params={name: Param(spec["default"], **{k: v for k, v in spec.items() if k != "default"})
            for name, spec in PARAM_SPECS.items()},
)
def history_migration() -> None:
    @task(pool="crm_api", multiple_outputs=False)
    def plan(**context: Any) -> dict[str, Any]:
        """Lease, migration_run and the chunks."""
        from bridge.migration import tasks

        return tasks.plan(context)

    @task
    def crm_chunk_list(planned: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """The groups of CRM chunks to map over (Airflow maps over a task's return value only)."""
        return list(planned["crm_groups"])

    @task
    def oa_chunk_list(planned: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """The groups of OA chunks to map over."""
        return list(planned["oa_groups"])

    @task(pool="crm_api", multiple_outputs=False)
    def dedupe_customers(**context: Any) -> dict[str, Any]:
        """Merge decisions over every CRM customer."""
        from bridge.migration import tasks

        return tasks.dedupe(context)

    @task(pool="crm_api", map_index_template="{{ chunk_label }}", multiple_outputs=False)
    def migrate_crm_chunk(refs: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        """One chunk of CRM records (or a few small ones)."""
        from bridge.migration import tasks

        _label(refs)
        return tasks.crm_chunks(refs, context)

    @task(pool="oa_api", map_index_template="{{ chunk_label }}", trigger_rule="none_failed",
          multiple_outputs=False)
    def migrate_oa_chunk(refs: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        """One chunk of OA instances (or a few small ones), linked to CRM deals and customers."""
        from bridge.migration import tasks

        _label(refs)
        return tasks.oa_chunks(refs, context)

    @task(pool="crm_api", trigger_rule="none_failed", multiple_outputs=False)
    def write_back(**context: Any) -> dict[str, Any]:
        """Deals ← their 立项申请."""
        from bridge.migration import tasks

        return tasks.writeback(context)

    @task(trigger_rule="all_done", multiple_outputs=False)
    def report(**context: Any) -> dict[str, Any]:
        """Report files and totals; fails when the run is incomplete."""
        from bridge.migration import tasks

        return tasks.report(context)

    @teardown
    def close_run(**context: Any) -> dict[str, Any]:
        """An unfinished run is marked aborted (when, why); the lease is released."""
        from bridge.migration import tasks

        return tasks.close(context)

    planned = plan()
    deduped = dedupe_customers()
    crm_chunks = migrate_crm_chunk.expand(refs=crm_chunk_list(planned))
    oa_chunks = migrate_oa_chunk.expand(refs=oa_chunk_list(planned))
    written = write_back()
    reported = report()
    planned >> deduped >> crm_chunks >> oa_chunks >> written >> reported >> close_run()


history_migration_dag = history_migration()
