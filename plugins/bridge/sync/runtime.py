"""What the sync DAG tasks call: Airflow context in, small dicts (counts) out.

The DAG files stay thin: each task is one call here. This module resolves
what comes from Airflow at run time (Connections through the hooks, the
``bridge_hub`` Connection, the run context) and hands plain arguments to the
engine functions of :mod:`bridge.sync.crm_to_oa`, which tests call directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.context import RunContext
from bridge.sync import common, crm_to_oa

log = logging.getLogger("bridge.sync")

PUBLISH_TASKS = {name: f"publish_{name}" for name in crm_to_oa.ASSETS}


def _ctx(context: Mapping[str, Any]) -> RunContext:
    return RunContext.from_airflow(context)


def run_started(context: Mapping[str, Any]) -> datetime | None:
    """When the DAG run started: the run summary's start, so the pages show how long a run took."""
    start = getattr(context.get("dag_run"), "start_date", None)
    return start if isinstance(start, datetime) and start.tzinfo is not None else None


def crm_to_oa_extract_stage(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``extract_stage`` of ``crm_to_oa_sync``."""
    from bridge.hooks.crm import CrmHook

    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    crm = CrmHook()
    try:
        tally = crm_to_oa.extract_stage(crm, common.hub(), _ctx(context), cfg, datetime.now(UTC))
    finally:
        crm.close()
    return tally.as_dict()


def crm_to_oa_load(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``load`` of ``crm_to_oa_sync``."""
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook

    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    crm, oa = CrmHook(), OaHook()
    try:
        tally = crm_to_oa.load(crm, oa, common.hub(), _ctx(context), cfg, datetime.now(UTC))
    finally:
        crm.close()
        oa.close()
    return tally.as_dict()


def crm_to_oa_summarise(context: Mapping[str, Any], started_at: datetime | None = None) -> list[str]:
    """Task ``summarise``: store and log the run summary; return the publish tasks of updated assets."""
    ti = context.get("ti")
    parts: dict[str, Any] = {}
    for task_id in ("extract_stage", "load"):
        parts[task_id] = ti.xcom_pull(task_ids=task_id) if ti is not None else None
    summary = crm_to_oa.summarise(common.hub(), _ctx(context), parts, datetime.now(UTC),
                                  started_at=started_at or run_started(context))
    _fail_if_a_task_failed(parts)
    return [PUBLISH_TASKS[name] for name in summary["updated"]]


def _fail_if_a_task_failed(parts: Mapping[str, Any]) -> None:
    """The run summary is stored; now make the DAG run red. ``summarise`` runs ``all_done`` and its publish
    branches are the DAG's leaves: if it succeeded, a run whose extract or load failed would end green."""
    failed = [task_id for task_id, part in parts.items() if part is None]
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"task(s) {', '.join(failed)} failed: the run summary is stored in the hub; "
                                   f"see their logs (nothing is lost: the next run resumes from the hub)")


# ---------------------------------------------------------------- oa_to_crm_sync

O2C_PUBLISH_TASKS = {name: f"publish_{name}" for name in ("deal", "notes", "meetings")}


def _backfill_days(context: Mapping[str, Any]) -> float:
    """The run's ``backfill_days`` Param (0 on scheduled runs); a bad value is refused with its name."""
    params = context.get("params") or {}
    raw = params.get("backfill_days", 0) if isinstance(params, Mapping) else 0
    if raw in (None, ""):
        return 0.0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError(f"oa_to_crm_sync: the Param backfill_days must be a number of days ≥ 0, not {raw!r}")
    return float(raw)


def oa_to_crm_discover(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``discover`` of ``oa_to_crm_sync``."""
    from bridge.hooks.oa import OaHook
    from bridge.sync import oa_to_crm

    cfg = oa_to_crm.OaToCrmSettings.from_settings()
    oa = OaHook()
    try:
        tally = oa_to_crm.discover(oa, common.hub(), _ctx(context), cfg, datetime.now(UTC),
                                   backfill_days=_backfill_days(context))
    finally:
        oa.close()
    return tally.as_dict()


def oa_to_crm_load(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``load`` of ``oa_to_crm_sync``."""
    from bridge.hooks.crm import CrmHook
    from bridge.sync import oa_to_crm

    cfg = oa_to_crm.OaToCrmSettings.from_settings()
    crm = CrmHook()
    try:
        tally = oa_to_crm.load(crm, common.hub(), _ctx(context), cfg, datetime.now(UTC))
    finally:
        crm.close()
    return tally.as_dict()


def oa_to_crm_summarise(context: Mapping[str, Any], started_at: datetime | None = None) -> list[str]:
    """Task ``summarise``: store and log the run summary; return the publish tasks of updated assets."""
    from bridge.sync import oa_to_crm

    ti = context.get("ti")
    parts = {task_id: (ti.xcom_pull(task_ids=task_id) if ti is not None else None)
             for task_id in ("discover", "load")}
    summary = oa_to_crm.summarise(common.hub(), _ctx(context), parts, datetime.now(UTC),
                                  started_at=started_at or run_started(context))
    _fail_if_a_task_failed(parts)
    return [O2C_PUBLISH_TASKS[name] for name in summary["updated"]]
