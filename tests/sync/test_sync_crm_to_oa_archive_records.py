"""CRM → OA, companies and contacts archived (deleted) and restored in the CRM, against the simulators: the
archived sweep tombstones and revives them within the one page budget it has per run; a live 立项申请 whose
customer was archived is left alone, counted and visible to data health; and the pure decision behind it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.sync.sync_c2o_world import C2O

from bridge.hub import store
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, business_day, run_checks
from bridge.sync import crm_to_oa
from bridge.sync.crm_to_oa import archive
from bridge.sync.crm_to_oa import decide as rules

LISTS = {f"GET /crm/v3/objects/{t}" for t in ("deals", "companies", "contacts")}  # the archived lists


@pytest.fixture
def world(c2o: C2O) -> C2O:
    """The c2o world with a sweep pass on every extract (the interval is tested on its own)."""
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, archive_sweep_seconds=0)
    return c2o


def _snapshot(world: C2O, entity: str, sid: str) -> store.Snapshot:
    with world.hub.connect() as conn:
        return store.get_snapshots(conn, "crm", entity, [sid])[sid]


def _records(world: C2O, operation: str, entity: str) -> list[dict[str, str]]:
    return [a["record_ids"] for a in world.audit(operation) if a["entity"] == entity]


def test_a_live_project_initiation_of_an_archived_customer_is_counted_not_withdrawn(
    world: C2O, tmp_path: Path
) -> None:
    # No lookback: the deal is not read again (HubSpot's v4 reads leave out an archived company, so a deal read
    # again after the archive has no company and waits in quarantine as missing_required instead).
    world.cfg = crm_to_oa.with_overrides(world.cfg, lookback_ms=0)
    company, contact = world.customer()
    deal = world.create_deal(company, stage="contractsent")
    world.sync()
    [instance] = world.instances_of(deal)
    world.create_deal(world.create_company())  # moves the watermarks past the first deal and its customer
    world.tick(5)
    world.extract()
    world.archive("companies", company)
    world.tick(60)
    extracted, loaded = world.sync()
    counts = {k: extracted.counts.get(k, 0) for k in ("archived_tombstoned_company", "archived_company_live_projects")}
    assert counts == {"archived_tombstoned_company": 1, "archived_company_live_projects": 1}
    assert loaded.counts.get("archived_withdrawn", 0) == 0
    assert [i["status"] for i in world.instances_of(deal)] == ["PENDING"], "the deal is alive: not withdrawn"
    snap = _snapshot(world, "company", company)
    assert snap.deleted
    assert snap.payload[store.TOMBSTONE_KEY]["by"] == "crm"
    assert _records(world, "archive", "company") == [{"company_id": company}]
    assert not _snapshot(world, "contact", contact).deleted, "the contact itself was not archived"
    health = run_checks(world.hub, day=business_day(world.now), run_id="test__c2o_company", now=world.now,
                        dictionary=world.d, cfg=HealthSettings(failing_ids_kept=50),
                        output=HealthOutput(tmp_path / "data", False, False))
    assert health.outcome("deal.company_id.company_live").failing_ids == [deal]
    assert instance["instance_code"] == world.project_link(deal).oa_id  # type: ignore[union-attr]


def test_an_archived_contact_leaves_the_form_and_comes_back_when_restored(world: C2O) -> None:
    company, first = world.customer()
    second = world.create_contact(company, lastname="王", firstname="芳", mobilephone="13987654321")
    world.create_deal(company)  # the deals' stream has its watermark (a first read only stages)
    world.sync()
    world.archive("contacts", first)
    world.tick(60)
    extracted = world.extract()
    assert extracted.counts["archived_tombstoned_contact"] == 1
    assert _snapshot(world, "contact", first).deleted
    deal = world.create_deal(company, stage="contractsent")
    world.tick(5)
    world.sync()
    [instance] = world.instances_of(deal)
    assert instance["widgets"]["contact_name"] == "王芳", "the archived contact is not put on a new form"
    world.cfg = crm_to_oa.with_overrides(world.cfg, lookback_ms=0)
    world.create_contact(world.create_company())
    world.extract()  # the contacts' watermark moves past the archived one: search will not read it again
    world.restore("contacts", first)  # hs_lastmodifieddate does not move
    world.tick(60)
    extracted = world.extract()
    assert extracted.counts["archived_restored_contact"] == 1
    assert not _snapshot(world, "contact", first).deleted
    assert _records(world, "restore", "contact") == [{"contact_id": first}]
    world.tick(60)
    assert world.extract().counts.get("archived_restored_contact", 0) == 0, "revived once"
    assert second


def test_companies_and_contacts_share_the_sweeps_page_budget(
    c2o: C2O, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "ARCHIVED_PAGE", 2)
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, archive_sweep_pages=2)
    companies = [c2o.create_company() for _ in range(3)]
    deals = [c2o.create_deal(companies[0]) for _ in range(3)]
    c2o.sync()
    for deal in deals:
        c2o.archive("deals", deal)
    for company in companies:
        c2o.archive("companies", company)
    c2o.tick(16 * 60)

    def list_calls() -> int:
        requests = c2o.sims.crm.admin("GET", "/_sim/stats")["requests"]
        return sum(n for route, n in requests.items() if route in LISTS)

    def lists(step: C2O) -> tuple[dict[str, int], int]:
        before = list_calls()
        counts = step.extract().counts
        return counts, list_calls() - before

    first, calls = lists(c2o)
    assert calls == 2, "two list pages per run, for every entity together"
    assert (first["archived_tombstoned"], first.get("archived_tombstoned_company", 0)) == (3, 0)
    c2o.tick(60)
    second, calls = lists(c2o)
    assert calls == 2
    assert second.get("archived_read", 0) == 0, "the deals' pass is done and not due again"
    assert second["archived_tombstoned_company"] == 3
    assert all(_snapshot(c2o, "company", c).deleted for c in companies)
    with c2o.hub.connect() as conn:
        assert store.get_watermark(conn, archive.cursor_stream("company")) == 0, "pass complete"
    c2o.tick(60)
    third, calls = lists(c2o)
    assert calls == 1, "the contacts' (empty) list: one page"
    assert third.get("archived_tombstoned_company", 0) == 0


def _link(deal: str, *, confirmed: bool = True, archived: bool = False) -> store.Link:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    return store.Link(id=1, link_type=rules.PROJECT_LINK, crm_type="deal", crm_id=deal, oa_type=rules.PROJECT_FORM,
                      oa_id="INST" if confirmed else None, oa_uuid="u", state={"archived": archived},
                      dictionary_version="v", created_at=at, updated_at=at, run_id=None)


def test_live_projects_of_an_archived_customer_are_the_confirmed_unarchived_ones() -> None:
    links = {
        "3": [_link("3")],
        "1": [_link("1", confirmed=False), _link("1")],
        "2": [_link("2", archived=True)],
        "4": [_link("4", confirmed=False)],
        "5": [],
    }
    assert rules.live_projects(links) == ["1", "3"]
    assert rules.live_projects({}) == []


def test_the_sweep_streams_of_deals_keep_their_names() -> None:
    assert archive.sweep_stream("deal") == archive.SWEEP_STREAM
    assert archive.cursor_stream("deal") == archive.CURSOR_STREAM
    assert archive.cursor_stream("company") == f"crm.company.archived{store.POSITION_SUFFIX}"
