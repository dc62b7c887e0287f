"""The journey test world: both simulators (rate limits off) per session; per test a CRM reseeded with a
small world (its journey seed: campaigns, events, participations, contacts' sources, survey answers), a
migrated SQLite hub of its own whose companies and contacts the real CRM → OA extract staged, hooks on the
simulators through the Airflow Connection variables, and the journey steps run as the DAG runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.hub_support import migrated_sqlite_hub

import bridge.dictionary
from bridge.context import RunContext
from bridge.hooks._retry import RetryPolicy
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import audit_log, snapshot
from bridge.journey import sources, tasks
from bridge.journey.stage import JourneyRun
from bridge.settings_model import JourneySection
from bridge.sync import crm_to_oa
from bridge.sync.frame import Hooks
from sandbox import launcher

SEED = 20261126
FAST_RETRY = RetryPolicy(max_attempts=4, max_total_wait=10, backoff_base=0.05, backoff_max=0.5)
SMALL_WORLD = {"seed": SEED, "companies": 12, "contacts_per_company": 3, "deals": 12, "dirty_share": 0.0}


@pytest.fixture(scope="session")
def journey_sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Simulators]:
    with launcher.simulators(tmp_path_factory.mktemp("journey_sims"), seed=SEED, max_lifetime=3600,
                             crm_args=["--rate-limits", "off"], oa_args=["--rate-limits", "off"]) as sims:
        yield sims


@dataclass
class Journey:
    """One test's world: simulators, hub, hooks, journey settings, a clock, the import folder."""

    sims: launcher.Simulators
    crm: CrmHook
    oa: OaHook
    hub: Engine
    import_dir: Path
    cfg: JourneySection
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    d: bridge.dictionary.Dictionary = field(default_factory=bridge.dictionary.load)
    runs: int = 0

    def ctx(self, task: str) -> RunContext:
        self.runs += 1
        return RunContext(dag_id="journey_sync", run_id=f"test__{self.runs}", task_id=task, try_number=1,
                          principal="bridge-test")

    def run(self, task: str = "test") -> JourneyRun:
        return tasks.journey_run(Hooks(crm_hook=self.crm, oa_hook=self.oa), self.hub, self.ctx(task), self.now,
                                 self.cfg, self.d)

    def step(self, step: Callable[[JourneyRun], None], task: str = "test") -> dict[str, Any]:
        """One journey step as its task runs it; its tally (counts, watermarks, API calls)."""
        return tasks.run_step(self.run(task), task, step)

    def stage_contacts(self) -> None:
        """The CRM → OA extract stages companies and contacts (what the journey resolves customers with)."""
        cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), initial_backfill_seconds=0)
        ctx = RunContext(dag_id="crm_to_oa_sync", run_id="test_extract", task_id="extract_stage", try_number=1,
                         principal="bridge-test")
        crm_to_oa.extract_stage(self.crm, self.hub, ctx, cfg, self.now, dictionary=self.d)

    def crm_act(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.sims.crm.admin("POST", path, body)
        assert isinstance(answer, dict)
        return answer

    def tick(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    # ------------------------------------------------------------ reading the hub
    def snapshots(self, entity: str) -> dict[str, dict[str, Any]]:
        system = "oa" if entity == "performance_review" else "crm"
        with self.hub.connect() as conn:
            rows = conn.execute(select(snapshot.c.source_id, snapshot.c.payload).where(
                snapshot.c.system == system, snapshot.c.entity == entity))
            return {str(r[0]): dict(r[1]) for r in rows}

    def watermark(self, stream: str) -> int | None:
        with self.hub.connect() as conn:
            return store.get_watermark(conn, stream)

    def quarantine(self, entity: str | None = None) -> list[store.QuarantineEntry]:
        with self.hub.connect() as conn:
            entries = store.list_quarantine(conn, store.QuarantineFilter(direction="journey"))
        return [e for e in entries if entity is None or e.entity == entity]

    def audit(self, operation: str) -> list[dict[str, Any]]:
        with self.hub.connect() as conn:
            rows = conn.execute(select(audit_log).where(audit_log.c.operation == operation)
                                .order_by(audit_log.c.seq))
            return [dict(r._mapping) for r in rows]


@pytest.fixture
def journey(journey_sims: launcher.Simulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journey]:
    """A fresh small world in the CRM, its companies and contacts staged by the CRM → OA extract."""
    journey_sims.crm.admin("POST", "/_sim/reset", {})
    journey_sims.crm.admin("POST", "/_sim/seed", SMALL_WORLD)
    for key, value in journey_sims.connection_env().items():
        monkeypatch.setenv(key, value)
    hub = hub_engine.get_engine(f"sqlite:///{migrated_sqlite_hub(tmp_path / 'hub.sqlite')}")
    folder = tmp_path / "journey_import"
    folder.mkdir()
    cfg = JourneySection(import_dir=str(folder), import_quiet_seconds=0)
    world = Journey(journey_sims, CrmHook(retry_policy=FAST_RETRY), OaHook(retry_policy=FAST_RETRY), hub, folder,
                    cfg)
    world.stage_contacts()
    yield world
    world.crm.close()
    world.oa.close()
    hub.dispose()


__all__ = ["Journey", "journey", "journey_sims", "sources"]
