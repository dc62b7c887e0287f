"""Scale-out run: the sync DAGs under the CeleryExecutor give the same OA and CRM state as one machine.

One module fixture plays the same business day (``scaleout_scenario``) twice:

* **reference** — the engine functions the DAGs' tasks call
  (``crm_to_oa.run_cycle``, then ``oa_to_crm.run_cycle``), in this process,
  on a SQLite hub, against one pair of simulators;
* **scale-out** — Airflow with the CeleryExecutor: api-server (127.0.0.1,
  free port), scheduler, dag-processor and one Celery worker (concurrency 2)
  as separate processes, PostgreSQL as the Airflow metadata database *and*
  the hub, the local Redis as broker, against a second pair of simulators
  with the same seed. Each run is triggered through the REST API: per cycle
  ``crm_to_oa_sync`` then ``oa_to_crm_sync``, and in the last (quiet) cycle
  both at once.

The reference runs while Airflow boots. The tests then check that every
task ran on the Celery worker, and that the OA instances, the CRM deals,
notes and meetings, and the hub's quarantine and xref links are the same on
both sides, with no duplicates. ``docs/scaleout.md`` explains the set-up.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import bindparam, create_engine, text
from tests.scaleout import scaleout_scenario as scenario
from tests.scaleout.conftest import REDIS_HOST, REDIS_PORT

from sandbox import celery_stack, launcher, localenv

pytestmark = [pytest.mark.scaleout, pytest.mark.timeout(600)]

C2O, O2C = "crm_to_oa_sync", "oa_to_crm_sync"
# The OA → CRM DAG joins the run as soon as its file is in dags/.
DAG_IDS = [C2O, O2C]
RUN_TIMEOUT = 240  # seconds per DAG run (a run takes ~10-20 s here)
WORKER_CONCURRENCY = 2
EXECUTED = re.compile(r"Executing workload in Celery: .*?ti=TaskInstanceDTO\(id=UUID\('(?P<ti>[0-9a-f-]+)'\), "
                      r"task_id='(?P<task>[^']+)', dag_id='(?P<dag>[^']+)', run_id='(?P<run>[^']+)'")
# Counters of a run summary that say what was decided and written (not what was merely re-read).
BUSINESS_COUNTS = ("enqueued", "due", "instances_created", "notices_sent", "writebacks", "written", "written_deal",
                   "written_notes", "written_meetings", "quarantined", "retried", "status_changed")


@dataclass
class Side:
    """What one side (reference or scale-out) ended with."""

    oa: dict[str, Any]
    crm: dict[str, Any]
    hub: dict[str, Any]
    duplicates: dict[str, int]
    chosen: dict[str, Any]


@dataclass
class ScaleOutRun:
    reference: Side
    scaleout: Side
    queue: str
    runs: list[list[tuple[str, str]]]  # per cycle: (dag_id, run_id) in trigger order
    task_instances: list[dict[str, Any]]  # from the metadata database
    dag_runs: dict[str, dict[str, Any]]  # run_id -> start/end
    celery_results: dict[str, str]  # celery task id -> status (result backend)
    executed: set[tuple[str, str, str, str]]  # (ti id, dag, run, task) from the worker's log
    worker_log: str
    summaries: dict[tuple[str, str], dict[str, Any]]  # (dag_id, run_id) -> run_summary row of the PostgreSQL hub
    reference_counts: list[dict[str, dict[str, Any]]]  # per cycle: dag_id -> the reference's summary counts
    seconds: dict[str, float] = field(default_factory=dict)


def business(counts: dict[str, Any]) -> dict[str, int]:
    return {k: int(counts[k]) for k in BUSINESS_COUNTS if counts.get(k)}


def _days(*moments: datetime) -> set[str]:
    """The calendar days (UTC and Asia/Shanghai) of the given moments, in both spellings."""
    days: set[str] = set()
    for moment in moments:
        for tz in (UTC, ZoneInfo("Asia/Shanghai")):
            day = moment.astimezone(tz).date()
            days |= {day.strftime("%Y%m%d"), day.isoformat()}
    return days


def _undated(value: Any, days: set[str]) -> Any:
    """Today's date inside serial numbers (项目编号) and 变更日期 does not make two runs differ."""
    if isinstance(value, dict):
        return {k: _undated(v, days) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_undated(v, days) for v in value]
    if isinstance(value, str):
        for day in days:
            value = value.replace(day, "<today>")
    return value


def _side(sims: launcher.Simulators, hub: Any, chosen: scenario.Chosen, days: set[str]) -> Side:
    return Side(oa=_undated(scenario.oa_state(sims), days), crm=_undated(scenario.crm_state(sims), days),
                hub=_undated(scenario.hub_state(hub, sims), days), duplicates=scenario.duplicates(sims),
                chosen=chosen.as_dict())


def _reference(sims: launcher.Simulators, work: Path) -> tuple[scenario.Chosen, Any, list[dict[str, Any]]]:
    """The single-machine run: the DAGs' engine functions, one call per DAG run, SQLite hub."""
    from bridge import settings as bridge_settings
    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.hub import engine
    from bridge.sync import crm_to_oa

    settings = bridge_settings.load(environ=scenario.SETTINGS_ENV)
    c2o_cfg = crm_to_oa.CrmToOaSettings.from_settings(settings)
    hub = engine.ensure_schema(f"sqlite:///{work / 'reference-hub.sqlite'}")
    counts: list[dict[str, Any]] = []
    with sims.as_connections():
        chosen = scenario.choose(sims)
        for number, phase in enumerate(scenario.PHASES):
            if phase is not None:
                phase(sims, chosen)
            crm, oa = CrmHook(), OaHook()
            cycle: dict[str, Any] = {}
            try:
                ctx = RunContext.local(principal="bridge-service", dag_id=C2O)
                cycle[C2O] = crm_to_oa.run_cycle(crm, oa, hub, ctx, c2o_cfg, datetime.now(UTC))
                if O2C in DAG_IDS:
                    from bridge.sync import oa_to_crm

                    o2c_cfg = oa_to_crm.OaToCrmSettings.from_settings(settings)
                    ctx = RunContext.local(principal="bridge-service", dag_id=O2C)
                    cycle[O2C] = oa_to_crm.run_cycle(oa, crm, hub, ctx, o2c_cfg, datetime.now(UTC))
            finally:
                crm.close()
                oa.close()
            for dag_id, summary in cycle.items():
                assert summary["status"] == "success", f"reference {dag_id} cycle {number}: {summary}"
            counts.append({dag_id: dict(summary["counts"]) for dag_id, summary in cycle.items()})
    return chosen, hub, counts


def _boot(stack: celery_stack.CeleryStack, env: dict[str, str], work: Path) -> None:
    log = work / "setup.log"
    localenv.prepare_home(env, log)  # airflow db migrate on PostgreSQL + the crm_api / oa_api pools
    localenv.prepare_hub(env, log)  # bridge hub upgrade on the PostgreSQL hub
    stack.start(wait_seconds=180)


def _wait(stack: celery_stack.CeleryStack, api: celery_stack.AirflowApi, runs: list[tuple[str, str]]) -> None:
    for dag_id, run_id in runs:
        state = api.wait_run(dag_id, run_id, timeout=RUN_TIMEOUT)
        if state == "success":
            continue
        try:
            tis = {ti["task_id"]: ti["state"] for ti in api.task_instances(dag_id, run_id)}
        except celery_stack.AirflowApiError as exc:
            tis = {"?": str(exc)}
        pytest.fail(f"scale-out run {dag_id} {run_id} ended {state!r} (task states {tis})\n{stack.log_tails(40)}")


def _metadata(url: str, wait_seconds: float = 30) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]],
                                                           dict[str, str]]:
    """Task instances and runs of the sync DAGs, and Celery's results for them.

    A run is ``success`` as soon as its last task reported through the
    Execution API; the worker stores the Celery result a moment later, so
    this waits (bounded) until no result of a finished task is still pending.
    """
    engine = create_engine(url)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            with engine.connect() as conn:
                tis = [dict(r._mapping) for r in conn.execute(text(
                    "SELECT id::text AS id, dag_id, run_id, task_id, state, try_number, queue, hostname, external_executor_id, "
                    "start_date, end_date FROM task_instance WHERE dag_id IN :dags"
                ).bindparams(bindparam("dags", value=DAG_IDS, expanding=True)))]
                runs = {str(r.run_id): dict(r._mapping) for r in conn.execute(text(
                    "SELECT dag_id, run_id, state, start_date, end_date FROM dag_run")) if r.dag_id in DAG_IDS}
                results = {str(r.task_id): str(r.status) for r in conn.execute(text(
                    "SELECT task_id, status FROM celery_taskmeta"))}
            pending = [ti for ti in tis if ti["state"] == "success"
                       and results.get(ti["external_executor_id"]) in (None, "PENDING", "STARTED")]
            if not pending or time.monotonic() > deadline:
                return tis, runs, results
            time.sleep(0.5)
    finally:
        engine.dispose()


def _hub_summaries(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    from bridge.hub import engine as hub_engine
    from bridge.hub import store

    with hub_engine.get_engine(url).connect() as conn:
        rows = [r for dag_id in DAG_IDS for r in store.recent_runs(conn, kind=dag_id, limit=100)]
    return {(r.dag_id, r.run_id): {"status": r.status, "counts": dict(r.counts)} for r in rows}


@pytest.fixture(scope="module")
def scaleout_run(scaleout_backends_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOutRun]:
    from bridge.hub import engine as hub_engine

    work = tmp_path_factory.mktemp("scaleout")
    started = time.monotonic()
    first_moment = datetime.now(UTC)
    seconds: dict[str, float] = {}
    tag = secrets.token_hex(4)
    queue = f"bridge_scaleout_{tag}"
    with celery_stack.provisioned_backends(scaleout_backends_dsn, REDIS_HOST, REDIS_PORT) as backends, \
            launcher.simulators(work / "ref-sims", seed=scenario.SEED, max_lifetime=900) as ref_sims, \
            launcher.simulators(work / "sims", seed=scenario.SEED, max_lifetime=900) as sims:
        base = localenv.airflow_env(connections=sims.connection_env(), home=work / "airflow", data_dir=work / "data",
                                    api_port=launcher.free_port(), extra=scenario.SETTINGS_ENV)
        env = celery_stack.celery_env(base, backends, queue, concurrency=WORKER_CONCURRENCY)
        stack = celery_stack.CeleryStack(
            env=env, log_dir=work / "airflow" / "logs" / "stack", max_lifetime=900,
            components=celery_stack.celery_components(queue, f"scaleout-{tag}@%h", WORKER_CONCURRENCY))
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                booting = pool.submit(_boot, stack, env, work)
                t0 = time.monotonic()
                ref_chosen, ref_hub, ref_counts = _reference(ref_sims, work)
                seconds["reference"] = time.monotonic() - t0
                booting.result(timeout=400)
            seconds["boot"] = time.monotonic() - started

            api = celery_stack.AirflowApi(stack.url, "admin", stack.admin_password())
            for dag_id in DAG_IDS:
                api.wait_dag(dag_id, timeout=120)
                api.set_paused(dag_id, False)
            chosen = scenario.choose(sims)
            assert chosen.as_dict() == ref_chosen.as_dict() | {"created": {}, "submitted": {}}, "the worlds differ"
            runs: list[list[tuple[str, str]]] = []
            for number, phase in enumerate(scenario.PHASES):
                if phase is not None:
                    phase(sims, chosen)
                t0 = time.monotonic()
                cycle = [(dag_id, f"scaleout_{number}_{tag}") for dag_id in DAG_IDS]
                if number == len(scenario.PHASES) - 1:  # the quiet cycle: both DAGs at once, on one worker
                    for dag_id, run_id in cycle:
                        api.trigger(dag_id, run_id)
                    _wait(stack, api, cycle)
                else:  # one after the other, as the reference does
                    for dag_id, run_id in cycle:
                        api.trigger(dag_id, run_id)
                        _wait(stack, api, [(dag_id, run_id)])
                seconds[f"cycle_{number}"] = time.monotonic() - t0
                runs.append(cycle)
            tis, dag_runs, results = _metadata(backends.metadata_url)
            worker_log = stack.log_text("celery-worker")
        finally:
            stack.stop()
        seconds["scaleout_total"] = time.monotonic() - started
        days = _days(first_moment, datetime.now(UTC) + timedelta(seconds=1))
        scale_hub = hub_engine.get_engine(backends.hub_url)
        try:
            result = ScaleOutRun(
                reference=_side(ref_sims, ref_hub, ref_chosen, days),
                scaleout=_side(sims, scale_hub, chosen, days),
                queue=queue, runs=runs, task_instances=tis, dag_runs=dag_runs, celery_results=results,
                executed={(m["ti"], m["dag"], m["run"], m["task"]) for m in EXECUTED.finditer(worker_log)},
                worker_log=worker_log, summaries=_hub_summaries(backends.hub_url), reference_counts=ref_counts,
                seconds=seconds,
            )
        finally:
            hub_engine.dispose_engines()
        seconds["total"] = time.monotonic() - started
        print(f"\nscale-out run of {DAG_IDS}; timings (s): {json.dumps({k: round(v, 1) for k, v in seconds.items()})}")
        if os.environ.get("BRIDGE_SCALEOUT_KEEP_STATE"):  # a JSON copy of both sides, for debugging
            Path(os.environ["BRIDGE_SCALEOUT_KEEP_STATE"]).write_text(json.dumps(
                {"reference": result.reference.__dict__, "scaleout": result.scaleout.__dict__, "seconds": seconds,
                 "reference_counts": result.reference_counts,
                 "summaries": {" ".join(k): v for k, v in result.summaries.items()},
                 "task_instances": result.task_instances},
                ensure_ascii=False, indent=1, default=str))
        yield result


# ---------------------------------------------------------------- the tasks really ran on the Celery worker


def test_every_task_ran_on_the_celery_worker_from_its_own_queue(scaleout_run: ScaleOutRun) -> None:
    ran = [ti for ti in scaleout_run.task_instances if ti["state"] == "success"]
    triggered = {(dag_id, run_id) for cycle in scaleout_run.runs for dag_id, run_id in cycle}
    assert {(ti["dag_id"], ti["run_id"]) for ti in ran} == triggered, "every triggered run has tasks that ran"
    assert {"extract_stage", "load", "summarise"} <= {ti["task_id"] for ti in ran if ti["dag_id"] == C2O}
    for ti in ran:
        assert ti["queue"] == scaleout_run.queue, ti
        assert (ti["id"], ti["dag_id"], ti["run_id"], ti["task_id"]) in scaleout_run.executed, (
            f"not in the worker's log: {ti}")
        assert scaleout_run.celery_results.get(ti["external_executor_id"]) == "SUCCESS", (
            f"no SUCCESS in Celery's result backend for {ti['task_id']} of {ti['run_id']}: {ti}")
    assert f"concurrency: {WORKER_CONCURRENCY} (prefork)" in scaleout_run.worker_log


def test_the_quiet_cycle_ran_both_dags_at_once(scaleout_run: ScaleOutRun) -> None:
    first, second = (scaleout_run.dag_runs[run_id] for _, run_id in scaleout_run.runs[-1])
    assert first["start_date"] < second["end_date"]
    assert second["start_date"] < first["end_date"], "the two runs of the last cycle overlapped in time"


def test_the_runs_wrote_their_summaries_to_the_postgresql_hub(scaleout_run: ScaleOutRun) -> None:
    """One summary per run; its decision and write counters equal the reference's, cycle by cycle.

    A run with a retried task is left out of the per-run comparison (its summary
    counts the last try only: what an earlier try wrote is not repeated); its
    effects are still in the compared end state.
    """
    triggered = [(dag_id, run_id) for cycle in scaleout_run.runs for dag_id, run_id in cycle]
    assert sorted(scaleout_run.summaries) == sorted(triggered)
    assert all(s["status"] == "success" for s in scaleout_run.summaries.values())
    retried = {(ti["dag_id"], ti["run_id"]) for ti in scaleout_run.task_instances if (ti["try_number"] or 0) > 1}
    counts = [{dag_id: scaleout_run.summaries[(dag_id, run_id)]["counts"] for dag_id, run_id in cycle}
              for cycle in scaleout_run.runs]
    assert counts[0][C2O].get("baseline_only", 0) > 0, counts[0]
    for dag_id in DAG_IDS:
        assert business(counts[0][dag_id]) == {}, f"{dag_id}: the first cycle only stages: {counts[0]}"
        assert business(counts[-1][dag_id]) == {}, f"{dag_id}: the quiet cycle wrote something: {counts[-1]}"
    expected_c2o = {1: {"due": 7, "enqueued": 7, "instances_created": 6, "quarantined": 1, "writebacks": 6,
                        "written": 6},
                    2: {"due": 5, "enqueued": 5, "instances_created": 2, "notices_sent": 2, "retried": 1,
                        "writebacks": 2, "written": 4}}
    compared = 0
    for number, (cycle, ref_cycle) in enumerate(zip(scaleout_run.runs, scaleout_run.reference_counts, strict=True)):
        for dag_id, run_id in cycle:
            if (dag_id, run_id) in retried:
                continue
            got = business(counts[number][dag_id])
            assert got == business(ref_cycle[dag_id]), (
                f"cycle {number} {dag_id}: scale-out {counts[number][dag_id]} vs reference {ref_cycle[dag_id]}")
            if dag_id == C2O and number in expected_c2o:
                assert got == expected_c2o[number], f"cycle {number}: {got}"
            compared += 1
    assert compared >= len(triggered) - 1, f"too many retried runs to compare: {sorted(retried)}"


# ---------------------------------------------------------------- same outcome as one machine


def test_oa_state_equals_the_single_machine_run(scaleout_run: ScaleOutRun) -> None:
    ref, out = scaleout_run.reference, scaleout_run.scaleout
    assert out.chosen == ref.chosen
    assert sorted(out.oa) == sorted(ref.oa), "the same deals got OA instances"
    for key in ref.oa:
        assert out.oa[key] == ref.oa[key], f"OA instance(s) {key} differ"
    assert out.duplicates == {}
    assert ref.duplicates == {}


def test_crm_state_equals_the_single_machine_run(scaleout_run: ScaleOutRun) -> None:
    ref, out = scaleout_run.reference, scaleout_run.scaleout
    assert sorted(out.crm) == sorted(ref.crm), "the same deals, notes and meetings were written"
    for key in ref.crm:
        assert out.crm[key] == ref.crm[key], f"CRM {key} differs"


def test_hub_quarantine_and_links_equal_the_single_machine_run(scaleout_run: ScaleOutRun) -> None:
    assert scaleout_run.scaleout.hub == scaleout_run.reference.hub


def test_the_crm_to_oa_outcome_is_the_one_the_scenario_expects(scaleout_run: ScaleOutRun) -> None:
    """Equality alone would pass if both sides were wrong the same way: check the business outcome too."""
    out = scaleout_run.scaleout
    chosen = out.chosen
    created = chosen["created"]
    projects = {*chosen["signed"], chosen["busy"], chosen["won_later"], created["won_new"], created["former"]}
    assert {k for k in out.oa if k.startswith("project_initiation:")} == {f"project_initiation:{d}" for d in projects}
    assert all(len(out.oa[f"project_initiation:{d}"]) == 1 for d in projects), "exactly one 立项申请 per deal"
    assert not any(f"project_initiation:{d}" in out.oa for d in chosen["noted"]), "notes-only edits write nothing"
    [busy] = out.oa[f"project_initiation:{chosen['busy']}"]
    assert busy["widgets"]["contract_amount"] == 161_000.0, "twelve edits, one 立项申请 with the last amount"
    notices = {k.split(":", 1)[1]: v for k, v in out.oa.items() if k.startswith("contract_amount_notice:")}
    assert sorted(notices) == sorted([chosen["signed"][0], chosen["busy"]])
    [busy_notice] = notices[chosen["busy"]]
    assert (busy_notice["widgets"]["old_amount"], busy_notice["widgets"]["new_amount"]) == (161_000.0, 171_000.0)
    assert busy_notice["widgets"]["project_no"] == busy["serial_number"]
    for deal in projects:
        [instance] = out.oa[f"project_initiation:{deal}"]
        written = out.crm[f"deal:{deal}"]
        assert written["oa_instance_code"] == f"project_initiation:{deal}#1"
        assert written["oa_project_no"] == instance["serial_number"]
    assert {k for k in out.crm if k.startswith("deal:")} == {f"deal:{d}" for d in projects}, (
        "write-backs only on the deals that got a 立项申请")
    assert ("crm_to_oa", "deal", created["former"], "owner_not_in_oa", "fixed") in map(tuple, out.hub["quarantine"])


def test_the_oa_to_crm_outcome_is_the_one_the_scenario_expects(scaleout_run: ScaleOutRun) -> None:
    out = scaleout_run.scaleout
    chosen, submitted = out.chosen, out.chosen["submitted"]
    approved, rejected = (out.crm[f"deal:{chosen['signed'][i]}"] for i in (0, 2))
    assert (approved["oa_approval_status"], approved.get("oa_decision_time")) == ("APPROVED", "<set>")
    assert (rejected["oa_approval_status"], rejected.get("oa_decision_time")) == ("REJECTED", "<set>")
    assert out.crm[f"deal:{chosen['busy']}"]["oa_approval_status"] == "PENDING"
    activities = {k for k in out.crm if not k.startswith("deal:")}
    assert activities == {f"notes:expense_claim:{submitted['expense']}", f"notes:travel_request:{submitted['trip']}",
                          f"notes:expense_claim:{submitted['project_expense']}",
                          f"meetings:visit_plan:{submitted['visit']}"}
    expense = out.crm[f"notes:expense_claim:{submitted['expense']}"]
    assert (expense["oa_amount"], expense["companies"], expense["deals"]) == ("2345.60", [chosen["company_of_signed0"]],
                                                                              [])
    assert out.crm[f"notes:expense_claim:{submitted['project_expense']}"]["deals"] == [chosen["busy"]]
    assert out.crm[f"notes:travel_request:{submitted['trip']}"]["companies"] == [chosen["created"]["company"]]
    assert ("oa_to_crm", "expense_claim", f"expense_claim:{submitted['orphan']}", "missing_customer_link",
            "open") in map(tuple, out.hub["quarantine"])
