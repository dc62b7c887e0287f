"""Report fixtures: a hub staged from the simulated company, the way the syncs stage it.

CRM records are mapped with ``Dictionary.from_crm`` from the world's wire
properties; OA records with ``Dictionary.from_oa`` from the instance details
the OA simulator serves (a real simulator process, seeded with the same
world). On top come hand-made records the world does not produce: hostile
names, deals won on the report's last day, xref links, sync run summaries,
watermarks, quarantine entries and 30 days of data-health scores.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from bridge import dictionary as bridge_dictionary
from bridge import permissions, runkinds
from bridge.context import RunContext
from bridge.dictionary import Dictionary
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import health_score, watermark
from bridge.staging import snapshot_row
from bridge.sync.frame import RunSummary, store_run_summary
from sandbox.common.world import World, wire_properties

REPORT_DAY = date(2026, 11, 26)
AS_OF = date(2026, 11, 25)
# The world's "now": 2026-11-26 00:30 Asia/Shanghai.
NOW = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
BUILT_AT = datetime(2026, 11, 25, 23, 31, tzinfo=UTC)  # 07:31 Asia/Shanghai on the report day
SEED = 4242
HOSTILE_COMPANY = '=HYPERLINK("http://evil.example/x","点我领奖")'
HOSTILE_DEAL = "+cmd|' /C calc'!A0 项目"
HOSTILE_OWNER = "@SUM(1+1)*cmd|' /C calc'!A0"
EXTRA_COMPANY_ID = "39999999001"
EXTRA_OWNER_ID = "70009001"


def owners_of(world: World) -> list[dict[str, Any]]:
    """The owners as HubSpot's /crm/v3/owners returns them (the CRM simulator's shape), plus a hostile one."""
    out = [{"id": e.owner_id, "email": e.email, "firstName": e.name[1:], "lastName": e.name[:1]}
           for e in world.owners]
    out.append({"id": EXTRA_OWNER_ID, "email": "evil@example.com", "firstName": "", "lastName": HOSTILE_OWNER})
    return out


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


def extra_crm_objects() -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, list[str]]]]]:
    """A hostile customer with deals won on the last day of the report, and edge cases."""
    created = _iso(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    company = {"id": EXTRA_COMPANY_ID, "properties": {
        "name": HOSTILE_COMPANY, "uscc": "", "lifecyclestage": "customer", "hubspot_owner_id": EXTRA_OWNER_ID,
        "createdate": created, "hs_lastmodifieddate": created}}
    deals = []
    specs = [("59999999001", HOSTILE_DEAL, "closedwon", "1888888.88", "2026-11-25"),
             ("59999999002", "=1+2 项目", "closedwon", "99.50", "2026-11-25"),
             ("59999999003", "-负数开头 项目", "contractsent", "5000.00", "2026-12-10"),
             ("59999999004", "@提及 项目", "delivered", "12000.00", "2026-11-24"),
             ("59999999005", "阶段无效 项目", "legacy_stage_7", "700.00", "2026-11-25")]
    for deal_id, name, stage, amount, close in specs:
        deals.append(({"id": deal_id, "properties": {
            "dealname": name, "dealstage": stage, "amount": amount, "closedate": f"{close}T00:00:00.000Z",
            "hubspot_owner_id": EXTRA_OWNER_ID, "createdate": created, "hs_lastmodifieddate": created}},
            {"companies": [EXTRA_COMPANY_ID]}))
    return [company], deals


@dataclass
class StagedHub:
    url: str
    engine: Engine
    world: World
    owners: list[dict[str, Any]]
    dictionary: Dictionary
    oa_details: list[dict[str, Any]]
    links: list[tuple[str, str]]


def stage_hub(url: str, world: World, oa_details: list[dict[str, Any]], d: Dictionary) -> StagedHub:
    """Migrate a hub at ``url`` and stage the world, the extras and the operational tables."""
    hub_engine.upgrade(url)
    engine = hub_engine.get_engine(url)
    companies = [({"id": o.id, "properties": wire_properties(o)}, o.associations) for o in world.iter_companies()]
    deals = [({"id": o.id, "properties": wire_properties(o)}, o.associations) for o in world.iter_deals()]
    extra_companies, extra_deals = extra_crm_objects()
    companies += [(c, {}) for c in extra_companies]
    deals += extra_deals
    rows: dict[tuple[str, str], list[Any]] = {}
    for entity, objects in (("company", companies), ("deal", deals)):
        for obj, assoc in objects:
            row = snapshot_row(d, entity, d.from_crm(entity, obj, assoc))
            if row is not None:
                rows.setdefault(("crm", entity), []).append(row)
    form_of = {code: name for name, code in
               __import__("sandbox.common.world", fromlist=["APPROVAL_CODES"]).APPROVAL_CODES.items()}
    for detail in oa_details:
        entity = form_of[detail["approval_code"]]
        row = snapshot_row(d, entity, d.from_oa(entity, detail))
        if row is not None:
            rows.setdefault(("oa", entity), []).append(row)
    # Links deal ⇄ 立项申请: the bridge links some won deals to an instance (its own creation).
    pi = [r for r in rows.get(("oa", "project_initiation"), [])]
    won = [r for r in rows[("crm", "deal")] if r.payload.get("stage") in ("won", "delivered")]
    links = [(deal.source_id, inst.source_id) for deal, inst in zip(won[::7], pi[::3], strict=False)]
    ctx = RunContext.local(dag_id="report_test")
    with engine.begin() as conn:
        for (system, entity), batch in rows.items():
            store.upsert_snapshots(conn, system, entity, batch, now=NOW)
        for crm_id, oa_id in links:
            store.save_link(conn, "deal_project", store.NewLink(crm_type="deal", crm_id=crm_id, oa_type="project_initiation", oa_id=oa_id), dictionary_version=d.version, now=NOW)
        # Sync runs of the last day, one old run (outside the 24 h window) and one failure, written as
        # the syncs write them (sync.frame.store_run_summary with the run kinds of bridge.runkinds).
        for i, (kind, status, counts) in enumerate([
            (runkinds.CRM_TO_OA, "success", {"read": 120, "created": 4, "updated": 9, "quarantined": 1}),
            (runkinds.CRM_TO_OA, "success", {"read": 80, "created": 2, "updated": 3}),
            (runkinds.CRM_TO_OA, "failed", {"read": 10}),
            (runkinds.OA_TO_CRM, "success", {"read": 50, "updated": 7, "created": 5}),
        ]):
            started = BUILT_AT - timedelta(hours=3 + i)
            store_run_summary(conn, RunContext(kind, f"r{i}", "load", 1, "bridge-service"), RunSummary(kind, status, counts),
                              started_at=started, now=started + timedelta(minutes=1))
        store_run_summary(conn, RunContext(runkinds.CRM_TO_OA, "old", "load", 1, "bridge-service"),
                          RunSummary(runkinds.CRM_TO_OA, "success", {"read": 999999, "created": 999}),
                          started_at=BUILT_AT - timedelta(days=3), now=BUILT_AT - timedelta(days=3, minutes=-1))
        # Unsent changes: CRM → OA one due (seen 25 min ago) and one in its debounce window; OA → CRM one
        # waiting for 400 minutes (longer than since its last successful run).
        for direction, source_id, ago in (("crm_to_oa", "D-late", timedelta(minutes=25)),
                                          ("crm_to_oa", "D-new", timedelta(seconds=30)),
                                          ("oa_to_crm", "I-stuck", timedelta(minutes=400))):
            store.enqueue_changes(conn, direction, [("deal", source_id, "h-" + source_id)], BUILT_AT - ago, 60, 150)
        # Watermarks: crm.company is 576 minutes old because nobody edited a company, which is no lag.
        for stream, minutes in (("crm.deal", 12), ("crm.company", 576), ("oa.expense_claim.created", 30),
                                ("oa.visit_plan.created", 5)):
            conn.execute(insert(watermark).values(
                stream=stream, value_ms=int((BUILT_AT - timedelta(minutes=minutes)).timestamp() * 1000),
                updated_at=BUILT_AT, run_id="r"))
        for i in range(40):
            day = REPORT_DAY - timedelta(days=i)
            conn.execute(insert(health_score).values(day=day, scope_type="overall", scope="all",
                                                     score=80.0 + (i % 7), checks=20, failed_checks=i % 5,
                                                     evaluated=1000, failed_rows=10 * (i % 5)))
            for entity, base in (("deal", 70.0), ("company", 90.0)):
                conn.execute(insert(health_score).values(day=day, scope_type="entity", scope=entity,
                                                         score=base - (i % 3), checks=5, failed_checks=i % 2,
                                                         evaluated=500, failed_rows=i))
        for n, (reason, entity, sid) in enumerate([("invalid_format", "contact", "C-1"),
                                                   ("invalid_format", "contact", "C-2"),
                                                   ("missing_customer_link", "expense_claim", "I-1"),
                                                   ("owner_not_in_oa", "deal", "D-9")]):
            store.quarantine_record(conn, ctx, store.QuarantineItem(direction="crm_to_oa" if entity != "expense_claim" else "oa_to_crm", system="crm" if entity != "expense_claim" else "oa", entity=entity, source_id=sid, reason_code=reason, message="测试用隔离记录"), now=NOW - timedelta(days=n))
    return StagedHub(url=url, engine=engine, world=world, owners=owners_of(world), dictionary=d,
                     oa_details=oa_details, links=links)


def oa_details_from_simulator(tmp: Path, world: World) -> list[dict[str, Any]]:
    """Seed a real OA simulator with ``world`` and read every instance detail back over HTTP."""
    from sandbox.oa.testing import running_oa

    with running_oa(tmp, "--rate-limits", "off", max_lifetime=300) as (_sim, client):
        client.admin("POST", "/seed", {"seed": world.seed, "companies": world.n_companies, "deals": world.n_deals,
                                       "oa_instances": world.n_oa_instances, "now_ms": world.now_ms})
        return client.all_instances()


def report_world() -> World:
    return World(seed=SEED, companies=150, deals=3000, oa_instances=2500, now_ms=int(NOW.timestamp() * 1000))


@pytest.fixture(scope="session")
def report_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StagedHub]:
    """A staged SQLite hub shared by the read-only report tests (copy it before writing)."""
    tmp = tmp_path_factory.mktemp("report_hub")
    world = report_world()
    details = oa_details_from_simulator(tmp / "oa", world)
    staged = stage_hub(f"sqlite:///{tmp / 'hub.sqlite'}", world, details, bridge_dictionary.load())
    yield staged
    staged.engine.dispose()


def copy_hub(staged: StagedHub, folder: Path) -> StagedHub:
    src = Path(staged.url.removeprefix("sqlite:///"))
    dst = folder / "hub.sqlite"
    with staged.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(src, dst)
    url = f"sqlite:///{dst}"
    return StagedHub(url=url, engine=hub_engine.get_engine(url), world=staged.world, owners=staged.owners,
                     dictionary=staged.dictionary, oa_details=staged.oa_details, links=staged.links)


@pytest.fixture
def hub_copy(report_hub: StagedHub, tmp_path: Path) -> Iterator[StagedHub]:
    """A private copy of the staged hub for tests that write (report_run rows)."""
    copy = copy_hub(report_hub, tmp_path)
    yield copy
    copy.engine.dispose()


@pytest.fixture(scope="module")
def module_hub_copy(report_hub: StagedHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StagedHub]:
    """A copy of the staged hub shared by one module's tests (they reset what they change)."""
    copy = copy_hub(report_hub, tmp_path_factory.mktemp("hub_copy"))
    yield copy
    copy.engine.dispose()


@pytest.fixture(scope="session")
def policy() -> permissions.Policy:
    return permissions.load()


@pytest.fixture(scope="session")
def built_report(report_hub: StagedHub, policy: permissions.Policy, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The report of REPORT_DAY built once from the staged hub (files in a temporary folder)."""
    from bridge.report.build import ReportRequest, build_report, owner_names

    out = tmp_path_factory.mktemp("reports")
    return build_report(report_hub.engine, report_hub.dictionary, policy, ReportRequest(report_day=REPORT_DAY,
                        owners=owner_names(report_hub.owners), recipients=["boss@example.com", "cfo@example.com"],
                        built_at=BUILT_AT, out_root=out, run_id="test_run", top_n=10))
