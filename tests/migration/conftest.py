"""Fixtures of the history-migration tests: both simulators (rate limits off), a fresh hub per test.

``mig`` gives a test a seeded world in the two simulators (``World`` with the
same parameters on both sides, so OA forms point at real CRM ids), a migrated
SQLite hub of its own, an isolated data folder, hooks pointed at the
simulators through the Airflow Connection variables, and helpers to run a
migration (the DAG's steps, in one process) and to read what it left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from tests.hub_support import hub_copy, migrated_sqlite_hub
from tests.sim_reads import crm_properties

from bridge.context import RunContext
from bridge.hooks._retry import RetryPolicy
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import audit_log, merge_record, quarantine, snapshot, xref
from bridge.migration import steps
from bridge.migration.params import CONFIRM_TEXT
from sandbox import launcher
from sandbox.common.world import World

# What a person sets on the Params form for a real load (the form's default is a dry run).
REAL_LOAD = {"dry_run": False, "confirm_load": CONFIRM_TEXT}
FAST_RETRY = RetryPolicy(max_attempts=4, max_total_wait=10, backoff_base=0.05, backoff_max=0.3)
# What each simulator's seed takes (the OA one no dirty share: it seeds with its default).
CRM_SEED = ("seed", "companies", "contacts_per_company", "deals", "dirty_share", "now_ms")
OA_SEED = ("seed", "oa_instances", "companies", "deals", "now_ms")


@pytest.fixture(scope="session")
def mig_sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Simulators]:
    with launcher.simulators(
        tmp_path_factory.mktemp("mig_sims"),
        max_lifetime=3600,
        crm_args=["--rate-limits", "off"],
        oa_args=["--rate-limits", "off"],
    ) as sims:
        yield sims


@pytest.fixture(scope="session")
def mig_hub_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_hub(tmp_path_factory.mktemp("mig_hub") / "hub.sqlite")


@dataclass
class Mig:
    """One test's world: simulators, hub, data folder, hooks; helpers to run and to look."""

    sims: launcher.Simulators
    hub: Engine
    hub_url: str
    data_dir: Path
    world: World | None = None
    oa_world: World | None = None  # the OA simulator seeds with the default dirty share (its seed takes none)
    hooks: list[Any] = field(default_factory=list)

    # ------------------------------------------------------------ world
    def seed(self, **kw: Any) -> World:
        """The same ``World`` in both simulators (replacing what they held)."""
        params = {
            "seed": 11,
            "companies": 60,
            "contacts_per_company": 2,
            "deals": 150,
            "oa_instances": 160,
            "dirty_share": 0.3,
            "now_ms": int(time.time() * 1000) - 60_000,
            **kw,
        }
        crm_seed = {k: params[k] for k in CRM_SEED}
        oa_seed = {k: params[k] for k in OA_SEED}
        self.sims.crm.admin("POST", "/_sim/seed", crm_seed)
        self._wait_crm()
        self.sims.oa.admin("POST", "/_sim/seed", oa_seed)
        self.world = World(**crm_seed, oa_instances=params["oa_instances"])
        self.oa_world = World(**oa_seed)
        return self.world

    def _wait_crm(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = self.sims.crm.admin("GET", "/_sim/health")
            if isinstance(health, dict) and health.get("status") == "ok":
                return
            time.sleep(0.05)
        raise AssertionError("the CRM simulator is still seeding")

    def empty(self) -> None:
        """Empty CRM portal and OA (users kept): for tests that create their own records."""
        self.sims.crm.admin("POST", "/_sim/reset", {})
        self.sims.oa.admin("POST", "/_sim/reset", {})

    def create(
        self,
        object_type: str,
        properties: Mapping[str, str],
        associations: Mapping[str, list[str]] | None = None,
    ) -> str:
        body: dict[str, Any] = {"object_type": object_type, "properties": dict(properties)}
        if associations:
            body["associations"] = dict(associations)
        created = self.sims.crm.admin("POST", "/_sim/act/create", body)
        assert isinstance(created, dict)
        return str(created["id"])

    def submit(self, form: str, user_id: str, widgets: Mapping[str, Any], start_ms: int | None = None) -> str:
        body: dict[str, Any] = {
            "approval": form,
            "user_id": user_id,
            "form": [{"id": k, "value": v} for k, v in widgets.items()],
        }
        if start_ms is not None:
            body["start_time"] = start_ms
        detail = self.sims.oa.admin("POST", "/_sim/act/submit", body)
        assert isinstance(detail, dict)
        return str(detail["instance_code"])

    # ------------------------------------------------------------ running
    def crm(self) -> CrmHook:
        hook = CrmHook(retry_policy=FAST_RETRY)
        self.hooks.append(hook)
        return hook

    def oa(self) -> OaHook:
        hook = OaHook(retry_policy=FAST_RETRY)
        self.hooks.append(hook)
        return hook

    def migration(self, run_id: str) -> steps.Migration:
        ctx = RunContext(
            dag_id="history_migration", run_id=run_id, task_id="test", try_number=1, principal="bridge-test"
        )
        return steps.Migration.create(run_id, ctx, hub=self.hub, data_dir=self.data_dir)

    def run(self, run_id: str, **params: Any) -> dict[str, Any]:
        """A whole migration (a real load unless ``dry_run=True``); the range starts with the world's history (an OA plan costs one query per
        30 days and form: from the 2018 default that is ~430 calls, a few seconds a run)."""
        params = {**REAL_LOAD, **params}
        if "date_from" not in params and self.world is not None:
            start = datetime.fromtimestamp(self.world.now_ms / 1000, tz=UTC) - timedelta(days=800)
            params["date_from"] = start.date().isoformat()
        return steps.run_all(self.migration(run_id), params, self.crm(), self.oa())

    # ------------------------------------------------------------ looking
    def count(self, table: Any, *where: Any) -> int:
        with self.hub.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    def table_sizes(self) -> dict[str, int]:
        return {t.name: self.count(t) for t in (snapshot, xref, quarantine, merge_record, audit_log)}

    def snapshot(self, system: str, entity: str, source_id: str) -> store.Snapshot | None:
        with self.hub.connect() as conn:
            return store.get_snapshot(conn, system, entity, source_id)

    def open_entry(self, entity: str, source_id: str) -> store.QuarantineEntry | None:
        with self.hub.connect() as conn:
            return store.open_quarantine(conn, "migration", entity, source_id)

    def merges(self) -> list[dict[str, Any]]:
        with self.hub.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(select(merge_record).order_by(merge_record.c.merged_id))
            ]

    def links(self, link_type: str) -> list[store.Link]:
        with self.hub.connect() as conn:
            return store.links(conn, link_type)

    def crm_properties(self, object_type: str, object_id: str) -> dict[str, Any]:
        return crm_properties(self.sims, object_type, object_id)

    def crm_writes(self) -> int:
        stats = self.sims.crm.admin("GET", "/_sim/stats")
        assert isinstance(stats, dict)
        writes = stats.get("writes") or {}
        total = 0
        for per_type in writes.values():
            if isinstance(per_type, dict):
                total += sum(v for v in per_type.values() if isinstance(v, int))
        return total


@pytest.fixture
def mig(
    mig_sims: launcher.Simulators, mig_hub_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Mig]:
    for key, value in mig_sims.connection_env().items():
        monkeypatch.setenv(key, value)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(data_dir))
    url = hub_copy(mig_hub_template, tmp_path / "hub.sqlite")
    monkeypatch.setenv("BRIDGE_HUB_URL", url)  # what tasks (Airflow context in) resolve the hub to
    world = Mig(sims=mig_sims, hub=hub_engine.ensure_schema(url), hub_url=url, data_dir=data_dir)
    yield world
    for hook in world.hooks:
        hook.close()
    hub_engine.get_engine(url).dispose()
