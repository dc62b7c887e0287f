"""RunContext: who acts, in which run; built from the Airflow task context or locally."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from bridge.context import DEFAULT_PRINCIPAL, RunContext


@pytest.fixture
def no_principal_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("BRIDGE_PRINCIPAL", raising=False)
    monkeypatch.delenv("BRIDGE__AUDIT__PRINCIPAL", raising=False)
    return monkeypatch


def airflow_context() -> dict[str, object]:
    ti = SimpleNamespace(
        dag_id="bridge_crm_to_oa",
        task_id="sync_deals",
        run_id="scheduled__2026-11-26T02:00:00+00:00",
        try_number=3,
    )
    dag_run = SimpleNamespace(dag_id="bridge_crm_to_oa", run_id="scheduled__2026-11-26T02:00:00+00:00")
    return {"ti": ti, "dag_run": dag_run, "run_id": dag_run.run_id}


def test_hub_context_from_airflow(no_principal_env: pytest.MonkeyPatch) -> None:
    ctx = RunContext.from_airflow(airflow_context(), principal="bridge-service@client-123")
    assert ctx == RunContext(
        "bridge_crm_to_oa",
        "scheduled__2026-11-26T02:00:00+00:00",
        "sync_deals",
        3,
        "bridge-service@client-123",
    )
    assert RunContext.from_airflow(airflow_context()).principal == DEFAULT_PRINCIPAL
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.principal = "someone"  # type: ignore[misc]
    assert ctx.with_principal("other").principal == "other"
    assert ctx.principal == "bridge-service@client-123"


def test_hub_context_principal_from_environment_or_settings(no_principal_env: pytest.MonkeyPatch) -> None:
    no_principal_env.setenv("BRIDGE__AUDIT__PRINCIPAL", "bridge-svc-from-settings")
    assert RunContext.from_airflow(airflow_context()).principal == "bridge-svc-from-settings"
    no_principal_env.setenv("BRIDGE_PRINCIPAL", "bridge-svc-env")
    assert RunContext.from_airflow(airflow_context()).principal == "bridge-svc-env"


def test_hub_context_partial_airflow_context() -> None:
    ctx = RunContext.from_airflow(
        {"task_instance": SimpleNamespace(dag_id="d", task_id="t", try_number=None), "run_id": "r"},
        principal="p",
    )
    assert (ctx.dag_id, ctx.run_id, ctx.task_id, ctx.try_number) == ("d", "r", "t", None)


def test_hub_context_local_runs_are_distinct() -> None:
    first, second = RunContext.local(), RunContext.local(principal="tester")
    assert first.principal == "bridge-cli"
    assert second.principal == "tester"
    assert first.dag_id == "local"
    assert first.task_id is None
    assert first.run_id != second.run_id
    assert (first.run_id or "").startswith("local__")
