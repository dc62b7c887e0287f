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
    return steps.Migration.create(_run_id(context), RunContext.from_airflow(context))


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


def report(context: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``report``: the report files and ``migration_run``; fails (after writing them) when chunks are missing."""
    from airflow.sdk.exceptions import AirflowFailException

    from bridge.migration import runs

    m = migration(context)
    with m.hub.connect() as conn:
        started = runs.get_run(conn, m.run_id) is not None
    if not started:
        raise AirflowFailException("本次历史迁移没有开始（计划任务 plan 未成功，见其日志）：没有迁移任何数据，也没有报告。")
    result = steps.finish(m)
    if result["status"] != "success":
        raise AirflowFailException(
            f"历史迁移未完成：{len(result['unfinished'])} 个批次或步骤没有完成（{', '.join(result['unfinished'][:10])}）。"
            f"报告已生成：{result['report_html']}。清除失败的任务即可从断点继续。")
    return result
