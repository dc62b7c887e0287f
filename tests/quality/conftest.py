"""Data-health fixtures: a hub staged from the demo world plus injected defects of every kind.

The world's dirty records (``World.defects()``) are staged the way the syncs
stage them (``sandbox.scenario.data_health``); on top of them each test module
gets the defects the world does not make (a duplicate customer under a new id,
an expense with a missing and one with an unknown customer, a 立项申请 of a
deal that does not exist, a half xref link, a CRM/OA amount mismatch, a stale
sync, a quarantine backlog), with the ids and owners to expect in ``Seeded``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

import bridge.dictionary
from bridge import runkinds
from bridge.context import RunContext
from bridge.dictionary import Dictionary
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import run_summary
from bridge.sync.frame import RunSummary, store_run_summary
from sandbox.common.world import SeedInstance, SeedObject, World
from sandbox.scenario.data_health import OaDetails, stage_crm, stage_oa, stage_world

logging.getLogger("great_expectations").setLevel(logging.WARNING)

NOW = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
DAY = datetime(2026, 11, 26).date()
SEED = 3  # a seed whose small world has every kind of dirty record
BACKLOG_REASON = "unmapped_value"
BACKLOG_SIZE = 25  # default threshold is 20


def small_world() -> World:
    """60 customers, 120 deals, 150 OA instances; a quarter of the records dirty, so every defect kind occurs."""
    return World(seed=SEED, companies=60, contacts_per_company=2, deals=120, oa_instances=150, dirty_share=0.25,
                 now_ms=int((NOW - timedelta(hours=2)).timestamp() * 1000))


@dataclass
class Seeded:
    """What was put in the hub, and where the tests must find it."""

    world: World
    dictionary: Dictionary
    url: str
    duplicate_company: str = ""
    duplicate_of: str = ""
    duplicate_owner: str = ""
    expense_no_customer: str = ""
    expense_unknown_customer: str = ""
    expense_applicant: str = ""
    unlinked_project: str = ""
    half_link_deal: str = ""
    mismatch_deal: str = ""
    mismatch_owner: str = ""
    mismatch_amount: str = ""
    contact_without_title: str = ""
    backlog_owner: str = "70000002"
    extra: dict[str, str] = field(default_factory=dict)

    def engine(self) -> Engine:
        return hub_engine.get_engine(self.url)


def _instance(world: World, approval: str, i: int, form: list[dict[str, object]], user_index: int = 0,
              status: str = "APPROVED") -> SeedInstance:
    base = world.oa_instance(0)
    user = [e for e in world.oa_users if e.department_id.startswith("od-sales")][user_index]
    code = f"DEAD0000-0000-0000-0000-{i:012X}"
    start = int((NOW - timedelta(days=3)).timestamp() * 1000)
    return replace(base, approval=approval, instance_code=code, uuid=f"inj-{i}", user_id=user.user_id,
                   open_id=user.open_id, department_id=user.department_id, status=status,
                   serial_number=f"20261123{9000 + i:04d}", start_ms=start, end_ms=start + 3_600_000, form=form)


def _expense(world: World, i: int, customer: str) -> SeedInstance:
    form: list[dict[str, object]] = [
        {"id": "reason", "type": "textarea", "name": "报销事由", "value": "客户需求调研发生费用"},
        {"id": "expense_type", "type": "radioV2", "name": "费用类型", "value": "交通"},
        {"id": "amount", "type": "amount", "name": "报销金额", "value": 120.5},
        {"id": "expense_date", "type": "date", "name": "费用日期", "value": "2026-11-20T00:00:00+08:00"},
        {"id": "customer_id", "type": "input", "name": "关联客户", "value": customer},
        {"id": "project_no", "type": "input", "name": "关联项目编号", "value": ""},
    ]
    return _instance(world, "expense_claim", i, form)


def _project(world: World, i: int, deal_id: str, amount: float, company_id: str) -> SeedInstance:
    form: list[dict[str, object]] = [
        {"id": "project_name", "type": "input", "name": "项目名称", "value": "注入的立项申请"},
        {"id": "deal_id", "type": "input", "name": "CRM商机编号", "value": deal_id},
        {"id": "customer_id", "type": "input", "name": "客户编号", "value": company_id},
        {"id": "customer_name", "type": "input", "name": "客户名称", "value": "北京星辰科技有限公司"},
        {"id": "contract_amount", "type": "amount", "name": "合同金额", "value": amount},
    ]
    return _instance(world, "project_initiation", i, form)


def notice(world: World, i: int, deal_id: str, old: str, new: str) -> SeedInstance:
    """A 合同金额变更通知 of a deal (the bridge's finance notice)."""
    form: list[dict[str, object]] = [
        {"id": "project_no", "type": "input", "name": "项目编号", "value": "202611230001"},
        {"id": "project_name", "type": "input", "name": "项目名称", "value": "注入的项目"},
        {"id": "deal_id", "type": "input", "name": "CRM商机编号", "value": deal_id},
        {"id": "customer_name", "type": "input", "name": "客户名称", "value": "北京星辰科技有限公司"},
        {"id": "old_amount", "type": "amount", "name": "原合同金额", "value": float(old)},
        {"id": "new_amount", "type": "amount", "name": "新合同金额", "value": float(new)},
        {"id": "changed_at", "type": "date", "name": "变更日期", "value": "2026-11-25T00:00:00+08:00"},
    ]
    return _instance(world, "contract_amount_notice", i, form, status="PENDING")


def stage_instances(seeded: Seeded, instances: list[SeedInstance]) -> None:
    details = OaDetails(seeded.world)
    stage_oa(seeded.engine(), seeded.dictionary, [(inst.approval, details.detail(inst)) for inst in instances])


def restage_deal(seeded: Seeded, index: int, **props: str) -> SeedObject:
    """Stage a newer state of world deal ``index`` with ``props`` changed (as the next sync would)."""
    deal = seeded.world.deal(index)
    changed = replace(deal, properties={**deal.properties, **props}, modified_ms=deal.modified_ms + 60_000)
    changed.properties["hs_lastmodifieddate"] = datetime.fromtimestamp(
        changed.modified_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{changed.modified_ms % 1000:03d}Z"
    stage_crm(seeded.engine(), seeded.dictionary, [changed])
    return changed


def _live_project_pair(world: World) -> tuple[int, SeedInstance]:
    """A world 立项申请 that is live, whose deal is clean and has an amount."""
    for inst in world.iter_oa_instances():
        if inst.approval != "project_initiation" or inst.status not in ("APPROVED", "PENDING"):
            continue
        deal_id = next(str(w["value"]) for w in inst.form if w["id"] == "deal_id")
        index = int(deal_id) - 50_000_000_001
        deal = world.deal(index)
        if "_defect" not in deal.properties and deal.properties["amount"]:
            return index, inst
    raise AssertionError("the world has no clean live 立项申请")


def inject(seeded: Seeded) -> None:
    world, d, hub = seeded.world, seeded.dictionary, seeded.engine()
    # A duplicate customer under a new CRM id: the same credit code, the name written with the city in brackets.
    original = next(c for c in world.iter_companies() if "_defect" not in c.properties
                    and c.properties["name"].endswith("有限公司") and "有限责任公司" not in c.properties["name"])
    city = original.properties["city"]
    name = original.properties["name"]
    variant = name[len(city):].replace("有限公司", f"（{city}）有限公司")  # 星辰科技（北京）有限公司
    dup = replace(original, id="30000009001", properties={**original.properties, "name": variant})
    stage_crm(hub, d, [dup])
    seeded.duplicate_company, seeded.duplicate_of = dup.id, original.id
    seeded.duplicate_owner = original.properties["hubspot_owner_id"]
    # A contact without a job title (only a defect once the dictionary makes job_title required).
    contact = world.contact(0)
    plain = replace(contact, id="40000009001", properties={**contact.properties, "jobtitle": ""})
    stage_crm(hub, d, [plain])
    seeded.contact_without_title = plain.id
    # Expenses with a missing and with an unknown customer; a 立项申请 of a deal that does not exist.
    no_customer, unknown_customer = _expense(world, 1, ""), _expense(world, 2, "39999999999")
    unlinked = _project(world, 3, "59999999999", 1000.0, world.company_id(0))
    stage_instances(seeded, [no_customer, unknown_customer, unlinked])
    seeded.expense_no_customer, seeded.expense_unknown_customer = no_customer.instance_code, unknown_customer.instance_code
    seeded.expense_applicant = no_customer.user_id
    seeded.unlinked_project = unlinked.instance_code
    # A half link: the deal side saved, the OA side never completed.
    half = world.deal(1)
    with hub.begin() as conn:
        store.save_link(conn, "deal_project", store.NewLink(crm_type="deal", crm_id=half.id, oa_type="project_initiation", oa_id=None, oa_uuid="inj-half-link"), dictionary_version=d.version)
    seeded.half_link_deal = half.id
    # The CRM amount of a linked deal changed, and no amount notice reached the OA.
    index, project = _live_project_pair(world)
    deal = world.deal(index)
    new_amount = f"{float(deal.properties['amount']) + 1000:.2f}"
    restage_deal(seeded, index, amount=new_amount)
    seeded.mismatch_deal, seeded.mismatch_amount = deal.id, new_amount
    seeded.mismatch_owner = deal.properties["hubspot_owner_id"]
    seeded.extra["mismatch_old_amount"] = deal.properties["amount"]
    seeded.extra["mismatch_instance"] = project.instance_code
    # Syncs: CRM → OA last succeeded 3 hours ago (stale), OA → CRM 5 minutes ago.
    # Written as the syncs write them (sync.frame.store_run_summary, run kinds of bridge.runkinds).
    ctx = RunContext(dag_id="crm_to_oa_sync", run_id="scheduled__x", task_id="load", try_number=1, principal="t")
    with hub.begin() as conn:
        for kind, ago in ((runkinds.CRM_TO_OA, timedelta(hours=3)), (runkinds.OA_TO_CRM, timedelta(minutes=5))):
            store_run_summary(conn, ctx, RunSummary(kind, "success", {"written": 1}), started_at=NOW - ago - timedelta(minutes=1),
                              now=NOW - ago)
        store_run_summary(conn, ctx, RunSummary(runkinds.CRM_TO_OA, "failed", {}), started_at=NOW - timedelta(minutes=2),
                          now=NOW - timedelta(minutes=1))
        # A quarantine backlog over the threshold, and a small one under it.
        for i in range(BACKLOG_SIZE):
            store.quarantine_record(conn, ctx, store.QuarantineItem("crm_to_oa", "crm", "deal", f"5100000{i:04d}", BACKLOG_REASON, "商机阶段值无法映射，请销售部更正。", field="stage", department="sales", data_owner=seeded.backlog_owner), now=NOW - timedelta(days=1, minutes=i))
        for i in range(2):
            store.quarantine_record(conn, ctx, store.QuarantineItem("crm_to_oa", "crm", "contact", f"4100000{i:04d}", "invalid_format", "手机号格式不对，请销售部更正。", field="mobile", department="sales", data_owner=seeded.backlog_owner), now=NOW - timedelta(hours=5))


@pytest.fixture(scope="session")
def dictionary() -> Dictionary:
    return bridge.dictionary.load()


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory, dictionary: Dictionary) -> Seeded:
    """A migrated SQLite hub with the world and the injected defects, built once per session."""
    path = tmp_path_factory.mktemp("quality_hub") / "hub.sqlite"
    url = f"sqlite:///{path}"
    seeded = Seeded(world=small_world(), dictionary=dictionary, url=url)
    hub = hub_engine.ensure_schema(url)
    stage_world(hub, seeded.world, dictionary)
    inject(seeded)
    hub.dispose()
    return seeded


@pytest.fixture
def seeded(seeded_template: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """A private copy of the seeded hub and a private data folder for one test."""
    source = Path(seeded_template.url.removeprefix("sqlite:///"))
    target = tmp_path / "hub.sqlite"
    shutil.copyfile(source, target)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(data))
    monkeypatch.setenv("BRIDGE_HUB_URL", f"sqlite:///{target}")
    for key in [k for k in os.environ if k.startswith("BRIDGE__DATA_HEALTH__")]:
        monkeypatch.delenv(key)
    yield replace(seeded_template, url=f"sqlite:///{target}", extra=dict(seeded_template.extra))
    hub_engine.dispose_engines()


def set_last_success(seeded: Seeded, kind: str, at: datetime) -> None:
    with seeded.engine().begin() as conn:
        conn.execute(update(run_summary).where(run_summary.c.kind == kind, run_summary.c.status == "success")
                     .values(finished_at=at))
