"""The CRM → OA test world: both simulators (rate limits off) per session, a fresh world per test.

``c2o`` gives each test an empty CRM portal and OA (users only), a migrated
SQLite hub of its own, hooks pointed at the simulators through the Airflow
Connection variables, and small helpers to act as people do (create and edit
records) and to read what arrived (OA instances, CRM properties, hub rows).
Time is a virtual clock (``c2o.now``) that only moves forward: the debounce
arithmetic is tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.hub_support import hub_copy
from tests.sim_reads import crm_properties

import bridge.dictionary
from bridge import permissions
from bridge.context import RunContext
from bridge.hooks._retry import RetryPolicy
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import audit_log
from bridge.sync import crm_to_oa
from bridge.sync.frame import Tally
from sandbox import launcher
from sandbox.common.world import COMPANY_ID_BASE, uscc_check_char

OWNER = "70000001"  # 彭明, peng.01@example.com: has an OA account
OWNER_2 = "70000002"  # 吴霞, wu.02@example.com
FORMER_OWNER = "70000999"  # 离职销售, former.sales@example.com: no OA account
FAST_RETRY = RetryPolicy(max_attempts=6, max_total_wait=20, backoff_base=0.05, backoff_max=0.5)


def valid_uscc(n: int) -> str:
    first17 = f"91110000{n:09d}"[:17]
    return first17 + uscc_check_char(first17)


@pytest.fixture(scope="session")
def c2o_sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Simulators]:
    """Both simulators without rate limits (unless a test turns them on), for the whole session."""
    with launcher.simulators(tmp_path_factory.mktemp("c2o_sims"), seed=20261126, max_lifetime=3600,
                             crm_args=["--rate-limits", "off"], oa_args=["--rate-limits", "off"]) as sims:
        yield sims


@pytest.fixture(scope="session")
def c2o_hub_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("c2o_hub") / "hub.sqlite"
    url = f"sqlite:///{path}"
    hub_engine.upgrade(url)
    hub_engine.get_engine(url).dispose()
    return path


@dataclass
class C2O:
    """One test's world: simulators, hub, hooks, settings and a virtual clock."""

    sims: launcher.Simulators
    hub: Engine
    crm: CrmHook
    oa: OaHook
    cfg: crm_to_oa.CrmToOaSettings
    now: datetime
    d: bridge.dictionary.Dictionary = field(default_factory=bridge.dictionary.load)
    p: permissions.Policy = field(default_factory=permissions.load)
    runs: int = 0
    _next: int = 1

    # ------------------------------------------------------------ clock and runs
    def tick(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def ctx(self, task: str = "test") -> RunContext:
        self.runs += 1
        return RunContext(dag_id="crm_to_oa_sync", run_id=f"test__{self.runs}", task_id=task, try_number=1,
                          principal="bridge-test")

    def extract(self, **kw: Any) -> Tally:
        return crm_to_oa.extract_stage(self.crm, self.hub, self.ctx("extract_stage"), self.cfg, self.now,
                                       dictionary=self.d, **kw)

    def load(self, **kw: Any) -> Tally:
        return crm_to_oa.load(self.crm, self.oa, self.hub, self.ctx("load"), self.cfg, self.now,
                              dictionary=kw.pop("dictionary", self.d), policy=self.p, **kw)

    def sync(self, wait: float = 61) -> tuple[Tally, Tally]:
        """Extract now, let the debounce window pass, load: one change becomes due in one call."""
        extracted = self.extract()
        self.tick(wait)
        return extracted, self.load()

    # ------------------------------------------------------------ acting as people
    def _uid(self) -> int:
        self._next += 1
        return self._next

    def crm_act(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.sims.crm.admin("POST", path, body)
        assert isinstance(answer, dict)
        return answer

    def create_company(self, **props: str) -> str:
        n = self._uid()
        base = {"name": f"测试客户{n}科技有限公司", "uscc": valid_uscc(n), "lifecyclestage": "opportunity",
                "industry": "软件", "city": "北京", "phone": "010-62345678", "hubspot_owner_id": OWNER}
        created = self.crm_act("/_sim/act/create", {"object_type": "companies", "properties": {**base, **props}})
        return str(created["id"])

    def create_contact(self, company_id: str, **props: str) -> str:
        base = {"lastname": "张", "firstname": "伟", "mobilephone": "13812345678", "email": "zhang.wei@example.cn",
                "jobtitle": "采购经理", "associatedcompanyid": company_id, "hubspot_owner_id": OWNER}
        created = self.crm_act("/_sim/act/create", {"object_type": "contacts", "properties": {**base, **props},
                                                   "associations": {"companies": [company_id]}})
        return str(created["id"])

    def create_deal(self, company_id: str | None, stage: str = "decisionmakerboughtin", amount: str = "120000.00",
                    owner: str = OWNER, **props: str) -> str:
        n = self._uid()
        base = {"dealname": f"测试项目{n}", "dealstage": stage, "amount": amount, "pipeline": "default",
                "closedate": "2026-12-31T00:00:00.000Z", "hubspot_owner_id": owner}
        body: dict[str, Any] = {"object_type": "deals", "properties": {**base, **props}}
        if company_id:
            body["associations"] = {"companies": [company_id]}
        return str(self.crm_act("/_sim/act/create", body)["id"])

    def edit(self, object_type: str, object_id: str, props: dict[str, str] | list[dict[str, str]],
             times: int = 1) -> None:
        self.crm_act("/_sim/act/update", {"object_type": object_type, "id": int(object_id), "properties": props,
                                          "times": times})

    def archive(self, object_type: str, object_id: str) -> None:
        """A person deletes a record (HubSpot archives it; its modification time does not move)."""
        assert self.crm_act("/_sim/act/archive", {"object_type": object_type, "id": int(object_id)})["archived"]

    def restore(self, object_type: str, object_id: str) -> None:
        """A person restores a record from HubSpot's recycle bin."""
        assert self.crm_act("/_sim/act/restore", {"object_type": object_type, "id": int(object_id)})["restored"]

    def oa_act(self, action: str, instance_code: str) -> dict[str, Any]:
        """A person acts on an OA instance (approve, reject, withdraw, …) through the OA simulator's admin API."""
        answer = self.sims.oa.admin("POST", f"/_sim/act/{action}", {"instance_code": instance_code})
        assert isinstance(answer, dict)
        return answer

    def customer(self) -> tuple[str, str]:
        """A clean company with one contact: (company id, contact id)."""
        company = self.create_company()
        return company, self.create_contact(company)

    # ------------------------------------------------------------ reading outcomes
    def crm_object(self, object_type: str, object_id: str) -> dict[str, Any]:
        return crm_properties(self.sims, object_type, object_id)

    def instances(self, form: str = "project_initiation") -> list[dict[str, Any]]:
        """The OA instances the bridge created (origin api) of one form, with the form parsed."""
        return launcher.oa_instances(self.sims.oa, form, "api")

    def instances_of(self, deal_id: str, form: str = "project_initiation") -> list[dict[str, Any]]:
        return [i for i in self.instances(form) if i["widgets"].get("deal_id") == deal_id]

    def oa_user(self, email: str) -> str:
        users = self.sims.oa.admin("GET", "/_sim/users")
        assert isinstance(users, dict)
        people = users.get("users", users.get("items", []))
        for user in people:
            if user.get("email") == email:
                return str(user["user_id"])
        raise AssertionError(f"no OA user {email}")

    def open_quarantine(self, deal_id: str) -> store.QuarantineEntry | None:
        with self.hub.connect() as conn:
            return store.open_quarantine(conn, "crm_to_oa", "deal", deal_id)

    def project_link(self, deal_id: str) -> store.Link | None:
        with self.hub.connect() as conn:
            found = [lk for lk in store.links(conn, "deal_project", crm_id=deal_id) if lk.oa_id]
        return found[0] if found else None

    def pending(self) -> list[store.PendingChange]:
        with self.hub.connect() as conn:
            return store.pending_changes(conn, "crm_to_oa")

    def audit(self, operation: str | None = None) -> list[dict[str, Any]]:
        with self.hub.connect() as conn:
            query = select(audit_log).order_by(audit_log.c.seq)
            if operation:
                query = query.where(audit_log.c.operation == operation)
            return [dict(r._mapping) for r in conn.execute(query)]


def make_c2o(sims: launcher.Simulators, hub_url: str, monkeypatch: pytest.MonkeyPatch,
             **settings: Any) -> C2O:
    sims.crm.admin("POST", "/_sim/reset", {})
    sims.oa.admin("POST", "/_sim/reset", {})
    for key, value in sims.connection_env().items():
        monkeypatch.setenv(key, value)
    hub = hub_engine.ensure_schema(hub_url)
    cfg = crm_to_oa.CrmToOaSettings.from_settings()
    cfg = crm_to_oa.with_overrides(cfg, initial_backfill_seconds=0, **settings)
    world = C2O(sims=sims, hub=hub, crm=CrmHook(retry_policy=FAST_RETRY), oa=OaHook(retry_policy=FAST_RETRY),
                cfg=cfg, now=datetime.now(UTC))
    world._next = int(datetime.now(UTC).timestamp()) % 100_000 * 10
    world.extract()  # the first run: baseline (nothing queued), watermark set
    return world


@pytest.fixture
def c2o(c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[C2O]:
    url = hub_copy(c2o_hub_template, tmp_path / "hub.sqlite")
    world = make_c2o(c2o_sims, url, monkeypatch)
    yield world
    world.crm.close()
    world.oa.close()
    hub_engine.get_engine(url).dispose()


@pytest.fixture
def c2o_factory(c2o_sims: launcher.Simulators, monkeypatch: pytest.MonkeyPatch) -> Callable[..., C2O]:
    """Build a world on another hub (PostgreSQL) or with other settings."""

    def build(hub_url: str, **settings: Any) -> C2O:
        return make_c2o(c2o_sims, hub_url, monkeypatch, **settings)

    return build


__all__ = ["C2O", "COMPANY_ID_BASE", "FORMER_OWNER", "OWNER", "OWNER_2", "valid_uscc"]
