"""The OA → CRM test world: the CRM → OA world (``sync_c2o_world``) plus the OA → CRM sync on the same hub.

``o2c`` gives each test empty simulators (rate limits off), a migrated SQLite
hub, both sync directions configured (the CRM → OA debounce off, the status
query lag off), and helpers to act as people do in the OA (submit, approve,
reject, withdraw, resubmit, delete) and to read what arrived in the CRM
(deal properties, notes, meetings, associations, the CRM simulator's write
counters). The OA → CRM runs use the wall clock (the simulators stamp
instances with it); the CRM → OA runs keep their virtual clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.hub_support import hub_copy
from tests.sync.sync_c2o_world import C2O, make_c2o

from bridge.context import RunContext
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import audit_log
from bridge.sync import crm_to_oa, oa_to_crm
from bridge.sync.common import DebounceSettings
from bridge.sync.frame import Tally
from sandbox import launcher

# OA users of World(seed=20261126) (sandbox/oa: /_sim/users).
APPLICANT = "u00011038"  # 彭明 (peng.01@example.com, CRM owner 70000001)
APPLICANT_2 = "u0002cfa2"  # 吴霞
WIDGET_TYPES = {"reason": "textarea", "purpose": "textarea", "expense_type": "radioV2", "amount": "amount",
                "estimated_cost": "amount", "expense_date": "date", "start_date": "date", "end_date": "date",
                "visit_date": "date"}


@dataclass
class O2C:
    """One test's two-way world."""

    c2o: C2O
    cfg: oa_to_crm.OaToCrmSettings
    runs: int = 0
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def sims(self) -> launcher.Simulators:
        return self.c2o.sims

    @property
    def hub(self) -> Any:
        return self.c2o.hub

    def ctx(self, task: str) -> RunContext:
        self.runs += 1
        return RunContext(dag_id="oa_to_crm_sync", run_id=f"o2c__{self.runs}", task_id=task, try_number=1,
                          principal="bridge-test")

    # ------------------------------------------------------------ runs
    def discover(self, **kw: Any) -> Tally:
        return oa_to_crm.discover(self.c2o.oa, self.hub, self.ctx("discover"), kw.pop("cfg", self.cfg),
                                  kw.pop("now", datetime.now(UTC)), dictionary=self.c2o.d, policy=self.c2o.p, **kw)

    def load(self, **kw: Any) -> Tally:
        return oa_to_crm.load(self.c2o.crm, self.hub, self.ctx("load"), kw.pop("cfg", self.cfg),
                              kw.pop("now", datetime.now(UTC)), dictionary=self.c2o.d, policy=self.c2o.p, **kw)

    def sync(self, **kw: Any) -> dict[str, Any]:
        """One OA → CRM run (discover + load); returns the summed counts."""
        found = self.discover(**kw)
        loaded = self.load()
        counts = dict(found.counts)
        for k, v in loaded.counts.items():
            counts[k] = counts.get(k, 0) + v
        counts["oa_calls"] = sum(found.api_calls.get("oa", {}).values())
        counts["crm_calls"] = sum(loaded.api_calls.get("crm", {}).values())
        self.last = {"discover": found, "load": loaded}
        return counts

    def c2o_sync(self) -> tuple[Tally, Tally]:
        """One CRM → OA run (extract + load, debounce off)."""
        self.c2o.tick(1)
        return self.c2o.extract(), self.c2o.load()

    # ------------------------------------------------------------ people in the OA
    def oa_act(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.sims.oa.admin("POST", f"/_sim/act/{action}", body)
        assert isinstance(answer, dict)
        return answer

    def submit(self, form: str, user: str = APPLICANT, **widgets: Any) -> str:
        values = [{"id": k, "type": WIDGET_TYPES.get(k, "input"), "value": v} for k, v in widgets.items()
                  if v is not None]
        return str(self.oa_act("submit", {"approval": form, "user_id": user, "form": values})["instance_code"])

    def expense(self, customer: str | None, amount: float = 1280.5, project_no: str | None = None,
                user: str = APPLICANT) -> str:
        return self.submit("expense_claim", user, reason="拜访客户交通费", expense_type="交通", amount=amount,
                           expense_date="2026-11-20T00:00:00+08:00", customer_id=customer, project_no=project_no)

    def trip(self, customer: str | None, project_no: str | None = None) -> str:
        return self.submit("travel_request", reason="现场实施", destination="上海", start_date="2026-11-23T00:00:00+08:00",
                           end_date="2026-11-25T00:00:00+08:00", estimated_cost=5600, customer_id=customer,
                           project_no=project_no)

    def visit(self, customer: str | None, project_no: str | None = None) -> str:
        return self.submit("visit_plan", customer_id=customer, visit_date="2026-11-28T00:00:00+08:00",
                           purpose="需求调研", participants="彭明、吴霞", project_no=project_no)

    def act(self, action: str, code: str, **extra: Any) -> dict[str, Any]:
        return self.oa_act(action, {"instance_code": code, **extra})

    def instance(self, code: str) -> dict[str, Any]:
        found = self.sims.oa.admin("GET", f"/_sim/instances/{code}")
        assert isinstance(found, dict)
        return found

    def resubmit(self, code: str) -> dict[str, Any]:
        form = json.loads(self.instance(code)["form"])
        return self.act("resubmit", code, form=form)

    # ------------------------------------------------------------ reading the CRM
    def objects(self, object_type: str) -> list[dict[str, Any]]:
        page = self.sims.crm.admin("GET", f"/_sim/objects/{object_type}?limit=10000")
        assert isinstance(page, dict)
        return list(page["results"])

    def activity(self, object_type: str, code: str) -> dict[str, Any] | None:
        found = [o for o in self.objects(object_type) if o["properties"].get("oa_instance_code") == code]
        assert len(found) <= 1, f"{len(found)} {object_type} for {code}: duplicates"
        return found[0] if found else None

    def associations(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        return self.c2o.crm.read_associations(from_type, to_type, [object_id]).get(str(object_id), [])

    def deal(self, deal_id: str) -> dict[str, Any]:
        return self.c2o.crm_object("deals", deal_id)

    def crm_writes(self) -> dict[str, Any]:
        stats = self.sims.crm.admin("GET", "/_sim/stats")
        assert isinstance(stats, dict)
        return dict(stats.get("writes") or {})

    def oa_created_by_api(self) -> int:
        stats = self.sims.oa.admin("GET", "/_sim/stats")
        assert isinstance(stats, dict)
        return int(stats["instances_created"]["api_total"])

    # ------------------------------------------------------------ reading the hub
    def quarantine(self, entity: str, code: str) -> store.QuarantineEntry | None:
        with self.hub.connect() as conn:
            return store.open_quarantine(conn, "oa_to_crm", entity, code)

    def audit(self, operation: str | None = None) -> list[dict[str, Any]]:
        with self.hub.connect() as conn:
            query = select(audit_log).order_by(audit_log.c.seq)
            if operation:
                query = query.where(audit_log.c.operation == operation)
            return [dict(r._mapping) for r in conn.execute(query)]

    def pending(self) -> list[store.PendingChange]:
        with self.hub.connect() as conn:
            return store.pending_changes(conn, "oa_to_crm")

    def project_of(self, deal_id: str) -> str:
        link = self.c2o.project_link(deal_id)
        assert link is not None, f"deal {deal_id} has no 立项申请"
        assert link.oa_id, f"deal {deal_id} has no confirmed 立项申请"
        return str(link.oa_id)

    def linked_deal(self, stage: str = "contractsent") -> tuple[str, str, str]:
        """A customer with a deal that reached 合同签订 and got its 立项申请: (company, deal, instance code)."""
        company, _ = self.c2o.customer()
        deal = self.c2o.create_deal(company, stage=stage)
        self.c2o_sync()
        return company, deal, self.project_of(deal)


def make_o2c(sims: launcher.Simulators, hub_url: str, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> O2C:
    c2o = make_c2o(sims, hub_url, monkeypatch, debounce=DebounceSettings(0, 0))
    # The CRM starts empty: the first extract set no watermark, so the next one must queue what it reads.
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, initial_backfill_seconds=None)
    cfg = oa_to_crm.with_overrides(oa_to_crm.OaToCrmSettings.from_settings(), query_lag_ms=0, **settings)
    return O2C(c2o=c2o, cfg=cfg)


@pytest.fixture
def o2c(c2o_sims: launcher.Simulators, c2o_hub_template: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[O2C]:
    url = hub_copy(c2o_hub_template, tmp_path / "hub.sqlite")
    world = make_o2c(c2o_sims, url, monkeypatch)
    yield world
    world.c2o.crm.close()
    world.c2o.oa.close()
    hub_engine.get_engine(url).dispose()


__all__ = ["APPLICANT", "APPLICANT_2", "O2C", "make_o2c", "o2c"]
