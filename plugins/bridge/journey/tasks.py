"""The ``journey_sync`` DAG's tasks: Airflow context in, a tally (small dict) out; one hop from the DAG file.

Each task builds the hook it needs from its Airflow Connection (closed when it ends), the hub engine, the
run context and the typed ``journey`` settings, and runs one step of :mod:`bridge.journey.sources` or
:mod:`bridge.journey.imports` (which tests call directly with :func:`journey_run`). Importing this module
imports nothing heavy: the DAG file is parsed every few seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bridge.context import RunContext
    from bridge.dictionary import Dictionary
    from bridge.journey.stage import JourneyRun
    from bridge.settings_model import JourneySection
    from bridge.sync.frame import Hooks

# Task ids of the DAG, in the order the summary lists them.
STEPS = ("campaigns", "events", "contact_sources", "feedback", "reviews", "imports")


def journey_run(
    hooks: Hooks,
    hub: Engine,
    ctx: RunContext,
    now: datetime,
    cfg: JourneySection | None = None,
    dictionary: Dictionary | None = None,
) -> JourneyRun:
    """A run of one journey step (``cfg`` and ``dictionary`` loaded unless given)."""
    import bridge.dictionary
    from bridge import settings
    from bridge.journey import DIRECTION
    from bridge.sync.frame import Run

    d = dictionary or bridge.dictionary.load()
    return Run(DIRECTION, hooks, hub, ctx, cfg or settings.load_typed().journey, now, d)


def settings_of_run(context: Mapping[str, Any]) -> JourneySection:
    """The ``journey`` settings of this run: the Param ``since`` (起始日期, YYYY-MM-DD) becomes
    ``history_since``, so the run re-reads the sources' history from that date (the migration path)."""
    from datetime import date

    from bridge import settings

    cfg = settings.load_typed().journey
    raw = (context.get("params") or {}).get("since")
    if not raw:
        return cfg
    try:
        since = date.fromisoformat(str(raw))
    except ValueError:
        raise settings.SettingsError(
            f"journey_sync 参数「起始日期」(since) 的值 {str(raw)[:40]!r} 不是日期：请填写 YYYY-MM-DD，例如 2025-01-01，"
            "或留空（从各数据的水位线继续读取）。") from None
    return cfg.model_copy(update={"history_since": since})


def run_step(run: JourneyRun, label: str, step: Callable[[JourneyRun], None]) -> dict[str, Any]:
    """Run ``step``; its API calls and summary line into the tally, which is returned for XCom."""
    before = run.calls_now()
    step(run)
    run.finish(f"journey {label}", before)
    return run.tally.as_dict()


def _task(context: Mapping[str, Any], system: str, label: str, step: Callable[[JourneyRun], None]) -> dict[str, Any]:
    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.sync import frame

    hook: CrmHook | OaHook = CrmHook() if system == "crm" else OaHook()
    hooks = frame.Hooks(crm_hook=hook) if isinstance(hook, CrmHook) else frame.Hooks(oa_hook=hook)
    try:
        run = journey_run(hooks, frame.hub(), RunContext.from_airflow(context), datetime.now(UTC),
                          settings_of_run(context))
        return run_step(run, label, step)
    finally:
        hook.close()


def campaigns(**context: Any) -> dict[str, Any]:
    """Task ``campaigns``: every campaign."""
    from bridge.journey import sources

    return _task(context, "crm", "campaigns", sources.stage_campaigns)


def events(**context: Any) -> dict[str, Any]:
    """Task ``events``: marketing events with their campaign, and their participations."""
    from bridge.journey import sources

    return _task(context, "crm", "events", sources.stage_events)


def contact_sources(**context: Any) -> dict[str, Any]:
    """Task ``contact_sources``: the original source of contacts changed since the watermark."""
    from bridge.journey import sources

    return _task(context, "crm", "contact_sources", sources.stage_contact_sources)


def feedback(**context: Any) -> dict[str, Any]:
    """Task ``feedback``: survey answers changed since the watermark."""
    from bridge.journey import sources

    return _task(context, "crm", "feedback", sources.stage_feedback)


def reviews(**context: Any) -> dict[str, Any]:
    """Task ``reviews``: performance results of the periods not settled yet."""
    from bridge.journey import sources

    return _task(context, "oa", "reviews", sources.stage_reviews)


def imports(**context: Any) -> dict[str, Any]:
    """Task ``imports``: the spreadsheets dropped in ``journey.import_dir`` (people resolved through the OA)."""
    from bridge.journey.imports import import_folder

    return _task(context, "oa", "imports", import_folder)


def summarise(**context: Any) -> dict[str, Any]:
    """Task ``summarise`` (all_done): the run summary from the steps' tallies, stored in the hub and logged;
    the run is made red when a step failed (after the summary is stored)."""
    from bridge.context import RunContext
    from bridge.journey import KIND
    from bridge.sync import frame
    from bridge.sync.tasks import run_started

    ti = context.get("ti")
    parts = {step: (ti.xcom_pull(task_ids=step) if ti is not None else None) for step in STEPS}
    summary = frame.Summary(KIND, {}).store(
        frame.hub(), RunContext.from_airflow(context), parts, datetime.now(UTC), started_at=run_started(context)
    )
    failed = [step for step, part in parts.items() if part is None]
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"journey step(s) {', '.join(failed)} failed: the run summary is stored in the hub; see their logs "
            "(nothing is lost: the next run reads from the hub's watermarks)"
        )
    return summary
