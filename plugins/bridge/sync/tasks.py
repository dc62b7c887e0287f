"""The sync DAGs' tasks: Airflow context in, small dicts (counts) out; one hop from the DAG file.

``dags/crm_to_oa_sync.py`` and ``dags/oa_to_crm_sync.py`` wire these
functions as tasks and nothing else. Each resolves what comes from Airflow at
run time (Connections through the hooks, the ``bridge_hub`` Connection, the
run context, Params) and hands plain arguments to the steps of
:mod:`bridge.sync.crm_to_oa` and :mod:`bridge.sync.oa_to_crm`, which tests
call directly. Importing this module imports nothing heavy (the DAG files are
parsed every few seconds): the bridge is imported when a task runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bridge.context import RunContext
    from bridge.sync.frame import Tally


def _ctx(context: Mapping[str, Any]) -> RunContext:
    from bridge.context import RunContext

    return RunContext.from_airflow(context)


def run_started(context: Mapping[str, Any]) -> datetime | None:
    """When the DAG run started: the run summary's start, so the pages show how long a run took."""
    start = getattr(context.get("dag_run"), "start_date", None)
    return start if isinstance(start, datetime) and start.tzinfo is not None else None


def _step(context: Mapping[str, Any], systems: tuple[str, ...], step: Callable[..., Tally]) -> dict[str, Any]:
    """Run one step with the vendor hooks it needs (from their Airflow Connections, closed when it ends),
    the hub, the run context and the time now; its tally goes to XCom."""
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.sync import frame

    hooks = frame.Hooks(
        crm_hook=CrmHook() if "crm" in systems else None, oa_hook=OaHook() if "oa" in systems else None
    )
    try:
        return step(hooks, frame.hub(), _ctx(context), datetime.now(UTC)).as_dict()
    finally:
        for hook in (hooks.crm_hook, hooks.oa_hook):
            if hook is not None:
                hook.close()


def _summarise(
    context: Mapping[str, Any], steps: tuple[str, str], summarise: Callable[..., dict[str, Any]]
) -> list[str]:
    """Store and log the run summary from the steps' XComs; return the publish tasks of updated assets.

    The summary is stored first; then a run whose extract or load failed is made red: ``summarise`` runs
    ``all_done`` and its publish branches are the DAG's leaves, so if it succeeded the run would end green."""
    from bridge.sync import frame

    ti = context.get("ti")
    parts = {task_id: (ti.xcom_pull(task_ids=task_id) if ti is not None else None) for task_id in steps}
    summary = summarise(frame.hub(), _ctx(context), parts, datetime.now(UTC), started_at=run_started(context))
    failed = [task_id for task_id, part in parts.items() if part is None]
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"task(s) {', '.join(failed)} failed: the run summary is stored in the hub; "
            f"see their logs (nothing is lost: the next run resumes from the hub)"
        )
    return [f"publish_{name}" for name in summary["updated"]]


# ---------------------------------------------------------------- crm_to_oa_sync


def crm_to_oa_extract_stage(**context: Any) -> dict[str, Any]:
    """Task ``extract_stage`` of ``crm_to_oa_sync``."""
    from bridge.sync import crm_to_oa

    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    return _step(
        context, ("crm",), lambda h, hub, ctx, now: crm_to_oa.extract_stage(h.crm, hub, ctx, cfg, now)
    )


def crm_to_oa_load(**context: Any) -> dict[str, Any]:
    """Task ``load`` of ``crm_to_oa_sync``."""
    from bridge.sync import crm_to_oa

    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    return _step(
        context, ("crm", "oa"), lambda h, hub, ctx, now: crm_to_oa.load(h.crm, h.oa, hub, ctx, cfg, now)
    )


def crm_to_oa_summarise(**context: Any) -> list[str]:
    """Task ``summarise`` of ``crm_to_oa_sync`` (a branch: the publish tasks of the assets written)."""
    from bridge.sync import crm_to_oa

    return _summarise(context, ("extract_stage", "load"), crm_to_oa.summarise)


# ---------------------------------------------------------------- oa_to_crm_sync


def _backfill_days(context: Mapping[str, Any]) -> float:
    """The run's ``backfill_days`` Param (0 on scheduled runs); a bad value is refused with its name."""
    params = context.get("params") or {}
    raw = params.get("backfill_days", 0) if isinstance(params, Mapping) else 0
    if raw in (None, ""):
        return 0.0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError(f"oa_to_crm_sync: the Param backfill_days must be a number of days ≥ 0, not {raw!r}")
    return float(raw)


def oa_to_crm_discover(**context: Any) -> dict[str, Any]:
    """Task ``discover`` of ``oa_to_crm_sync`` (the run's ``backfill_days`` Param too)."""
    from bridge.sync import oa_to_crm

    cfg, days = oa_to_crm.OaToCrmSettings.from_settings(), _backfill_days(context)
    return _step(
        context,
        ("oa",),
        lambda h, hub, ctx, now: oa_to_crm.discover(h.oa, hub, ctx, cfg, now, backfill_days=days),
    )


def oa_to_crm_load(**context: Any) -> dict[str, Any]:
    """Task ``load`` of ``oa_to_crm_sync``."""
    from bridge.sync import oa_to_crm, transfer

    cfg = oa_to_crm.OaToCrmSettings.from_settings()
    # The OA hook only when approved instances' files are to be taken across (settings attachments.enabled).
    systems = ("crm", "oa") if transfer.load_settings().enabled else ("crm",)
    return _step(
        context, systems, lambda h, hub, ctx, now: oa_to_crm.load(h.crm, hub, ctx, cfg, now, oa=h.oa_hook)
    )


def oa_to_crm_summarise(**context: Any) -> list[str]:
    """Task ``summarise`` of ``oa_to_crm_sync`` (a branch: the publish tasks of the assets written)."""
    from bridge.sync import oa_to_crm

    return _summarise(context, ("discover", "load"), oa_to_crm.summarise)


# ---------------------------------------------------------------- the sync DAGs' shared shape

# Both sync DAGs: every minute from 2026 in Shanghai time (the timetable is each DAG's own), never two runs at
# once (a slow run delays the next), no catch-up (the hub's watermarks say what to read, not the dates), a run
# abandoned after 30 minutes; tasks retried twice and stopped after 20 (the load lease's time to live).
SYNC_DAG_ARGS: dict[str, Any] = {
    "start_date": datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
    "catchup": False,
    "max_active_runs": 1,
    "dagrun_timeout": timedelta(minutes=30),
    "default_args": {
        "owner": "bridge",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=20),
    },
}


def chain(system: str, steps: Sequence[Any], summary: Any, assets: Mapping[str, Any]) -> None:
    """``poll_gate`` >> the steps >> ``summary`` >> one ``publish_<asset>`` per asset (at DAG parse time).

    ``poll_gate`` is the polling safety net: a scheduled run is skipped while the events of ``system`` are
    healthy (:func:`bridge.events.health.poll_gate`). ``summary`` is a branch that picks the publish tasks
    of the assets written; the others are skipped."""
    from airflow.sdk import chain as airflow_chain
    from airflow.sdk import task

    def poll_gate(**context: Any) -> bool:
        """Polling safety net: a scheduled run is skipped while events are healthy (bridge.events.health)."""
        from bridge.events import health

        return health.poll_gate(context, system)

    def publish() -> None:
        """Emits the asset event (the branch skips this task when nothing was written)."""

    gate = task.short_circuit(ignore_downstream_trigger_rules=True)(poll_gate)()
    airflow_chain(gate, *steps, summary)
    for name, asset in assets.items():
        summary >> task(task_id=f"publish_{name}", outlets=[asset])(publish)()
