"""What the ``history_migration`` DAG's tasks call: Airflow context in, small dicts out.

Resolves what Airflow provides at run time (the run id, the Params, the
Connections through the hooks, the ``bridge_hub`` Connection) and hands plain
arguments to :mod:`bridge.migration.steps`. A parameter error or a second
migration holding the lease fails the task at once (``AirflowFailException``:
no retries, the Chinese message in the log and the UI); anything else is
retried by Airflow (``retries`` ≥ 2), and every step is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from bridge.context import RunContext
from bridge.migration import steps
from bridge.migration.params import ParamsError
from bridge.migration.runs import MigrationLocked

log = logging.getLogger("bridge.migration")
T = TypeVar("T")


def _run_id(context: Mapping[str, Any]) -> str:
    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", None)
    if not run_id:
        raise ValueError("the task context has no run_id")
    return str(run_id)


def migration(context: Mapping[str, Any]) -> steps.Migration:
    m = steps.Migration.create(_run_id(context), RunContext.from_airflow(context))
    m.run_state = _airflow_run_state(context)
    return m


def _airflow_run_state(context: Mapping[str, Any]) -> Callable[[str], str | None] | None:
    """Airflow's state of a ``history_migration`` run id, asked through the task's own Execution API.

    The robust source: the hub's ``migration_run.status`` of a run that was killed still says
    ``running``, while Airflow knows the run ended. A run id Airflow does not know gives None (the
    lease then only expires).
    """
    ti = context.get("ti")
    dag_id = str(getattr(context.get("dag"), "dag_id", None) or "history_migration")
    if ti is None or not hasattr(ti, "get_dr_count"):
        return None

    def state(run_id: str) -> str | None:
        try:
            if not ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
                return None
            return str(ti.get_dagrun_state(dag_id=dag_id, run_id=run_id))
        except Exception:  # the API cannot answer: treat the holder as alive (wait for the expiry)
            log.warning("could not ask Airflow for the state of run %s", run_id, exc_info=True)
            return None

    return state


@contextmanager
def _fail_fast() -> Iterator[None]:
    """Errors a retry cannot fix end the task at once, with their Chinese message."""
    try:
        yield
    except (MigrationLocked, ParamsError) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from exc


@contextmanager
def _hooks(crm: bool = True, oa: bool = False) -> Iterator[tuple[Any, Any]]:
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook

    crm_hook = CrmHook() if crm else None
    oa_hook = OaHook() if oa else None
    try:
        yield crm_hook, oa_hook
    finally:
        for hook in (crm_hook, oa_hook):
            if hook is not None:
                hook.close()


def _guarded(fn: Callable[[], T]) -> T:
    with _fail_fast():
        return fn()


def plan(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``plan``: lease, ``migration_run``, the chunks (the same ones again for a cleared run)."""
    params = dict(context.get("params") or {})
    m = migration(context)
    with _hooks(crm=True, oa=True) as (crm, oa):
        return _guarded(lambda: steps.start(m, params, crm, oa))


def dedupe(context: Mapping[str, Any]) -> dict[str, Any]:
    m = migration(context)
    with _hooks() as (crm, _):
        return _guarded(lambda: steps.dedupe(m, crm))


def crm_chunks(refs: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One mapped task: a group of CRM chunks (usually one)."""
    m = migration(context)
    with _hooks() as (crm, _):
        return _guarded(lambda: steps.crm_group(m, crm, refs))


def oa_chunks(refs: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One mapped task: a group of OA chunks (usually one)."""
    m = migration(context)
    with _hooks(crm=True, oa=True) as (crm, oa):
        return _guarded(lambda: steps.oa_group(m, oa, crm, refs))


def label(refs: Sequence[Mapping[str, Any]]) -> str:
    """The mapped task's name in the UI: its first chunk, and how many more it does."""
    first = f"{refs[0]['entity']} #{refs[0]['chunk_no']}" if refs else "-"
    return first if len(refs) <= 1 else f"{first} +{len(refs) - 1}"


def writeback(context: Mapping[str, Any]) -> dict[str, Any]:
    m = migration(context)
    with _hooks() as (crm, _):
        return _guarded(lambda: steps.writeback(m, crm))


def close(context: Mapping[str, Any]) -> dict[str, Any]:
    """Teardown ``close_run``: an unfinished run is marked aborted (when, why); its lease is released."""
    m = migration(context)
    return steps.close(m, _airflow_why(context, m.run_id))


def _airflow_why(context: Mapping[str, Any], run_id: str) -> str | None:
    """Which tasks of this run failed or were stopped, from Airflow (None when Airflow cannot say)."""
    ti = context.get("ti")
    dag_id = str(getattr(context.get("dag"), "dag_id", None) or "history_migration")
    if ti is None or not hasattr(ti, "get_task_states"):
        return None
    try:
        states = dict((ti.get_task_states(dag_id=dag_id, run_ids=[run_id]) or {}).get(run_id) or {})
    except Exception:
        log.warning("could not ask Airflow for the task states of run %s", run_id, exc_info=True)
        return None
    return why_from_states(states)


def why_from_states(states: Mapping[str, Any]) -> str | None:
    """``任务 migrate_crm_chunk_2 失败；report 未运行（运行被标记为失败或上游失败）。``"""
    failed = sorted(
        t for t, s in states.items() if str(s) in ("failed", "upstream_failed") and t != "close_run"
    )
    if not failed and str(states.get("report")) == "success":
        return None
    parts = []
    if failed:
        parts.append(f"任务 {', '.join(failed[:5])}{' 等' if len(failed) > 5 else ''} 失败")
    if str(states.get("report")) in ("skipped", "None", "upstream_failed", "removed"):
        parts.append("报告任务 report 没有运行（运行在 Airflow 中被标记为失败或被停止）")
    return "；".join(parts) + "。" if parts else None


def report(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``report``: the report files and ``migration_run``; fails (after writing them) when chunks are missing."""
    from airflow.sdk.exceptions import AirflowFailException

    from bridge.migration import runs

    m = migration(context)
    with m.hub.connect() as conn:
        started = runs.get_run(conn, m.run_id) is not None
    if not started:
        raise AirflowFailException(
            "本次历史迁移没有开始（计划任务 plan 未成功，见其日志）：没有迁移任何数据，也没有报告。"
        )
    result = steps.finish(m)
    if result["status"] != "success":
        raise AirflowFailException(
            f"历史迁移未完成：{len(result['unfinished'])} 个批次或步骤没有完成（{', '.join(result['unfinished'][:10])}）。"
            f"报告已生成：{result['report_html']}。清除失败的任务即可从断点继续。"
        )
    return result
