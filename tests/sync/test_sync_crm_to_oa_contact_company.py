"""CRM → OA, a contact with several companies: which one makes it the 客户联系人 of a deal's 立项申请 is the
rule ``crm_to_oa.contact_company`` (primary | deal_company | first), tested over the simulators with a contact
linked to two companies by v4 associations (one unlabeled, one labelled Primary); the pure rule; the setting."""

from __future__ import annotations

import pytest
from tests.sync.sync_c2o_world import C2O, OWNER

from bridge import settings as bridge_settings
from bridge.sync import common, crm_to_oa
from bridge.sync.crm_to_oa import decide as rules

ASSOC_READ = "POST /crm/v4/associations/{from_type}/{to_type}/batch/read"


def _two_company_contact(c2o: C2O) -> tuple[str, str, str]:
    """(first, primary, contact): the contact linked to ``first`` (unlabeled, earlier, lower id), then to
    ``primary`` with HubSpot's Primary label."""
    first, primary = c2o.create_company(), c2o.create_company()
    contact = str(c2o.crm_act("/_sim/act/create", {"object_type": "contacts", "properties": {
        "lastname": "李", "firstname": "娜", "mobilephone": "13912345678", "hubspot_owner_id": OWNER}})["id"])
    for company, label in ((first, False), (primary, True)):
        c2o.crm_act("/_sim/act/associate", {"from_type": "contacts", "from_id": int(contact),
                                            "to_type": "companies", "to_id": int(company), "primary": label})
    assert c2o.crm_object("contacts", contact)["associatedcompanyid"] == primary
    return first, primary, contact


@pytest.mark.parametrize(("rule", "on_first", "on_primary"), [
    ("primary", None, "李娜"),
    ("deal_company", "李娜", "李娜"),
    ("first", "李娜", None),
])
def test_the_rule_decides_whose_contact_a_two_company_contact_is(
    c2o: C2O, rule: str, on_first: str | None, on_primary: str | None
) -> None:
    c2o.cfg = crm_to_oa.with_overrides(c2o.cfg, contact_company=rule)
    first, primary, _ = _two_company_contact(c2o)
    deal_first = c2o.create_deal(first, stage="contractsent")
    deal_primary = c2o.create_deal(primary, stage="contractsent")
    before = c2o.sims.crm.admin("GET", "/_sim/stats")["requests"]
    _, loaded = c2o.sync()
    after = c2o.sims.crm.admin("GET", "/_sim/stats")["requests"]
    assert loaded.counts["instances_created"] == 2
    [one] = c2o.instances_of(deal_first)
    [two] = c2o.instances_of(deal_primary)
    assert one["widgets"].get("contact_name") == on_first
    assert two["widgets"].get("contact_name") == on_primary
    reads = {k: after.get(k, 0) - before.get(k, 0) for k in after if k.startswith("POST /crm/v4/associations/")}
    extra = {"primary": 0, "deal_company": 1, "first": 2}[rule]  # load's own v4 reads (extract reads 2 pages')
    assert sum(reads.values()) == 2 + extra, reads


@pytest.mark.parametrize(("rule", "company", "primary", "associated", "belongs"), [
    ("primary", "A", "B", ["A", "B"], False),
    ("primary", "B", "B", ["A", "B"], True),
    ("deal_company", "A", "B", ["A", "B"], True),
    ("deal_company", "C", "B", ["A", "B"], False),
    ("deal_company", "B", "B", [], True),
    ("first", "A", "B", ["A", "B"], True),
    ("first", "B", "B", ["A", "B"], False),
    ("first", "B", "B", [], True),
])
def test_contact_of_company_rule(rule: str, company: str, primary: str, associated: list[str],
                                 belongs: bool) -> None:
    assert rules.contact_of_company(rule, company, primary, associated) is belongs


def test_the_setting_defaults_to_primary_and_refuses_an_unknown_rule() -> None:
    assert crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {}}).contact_company == "primary"
    assert crm_to_oa.CrmToOaSettings.from_settings().contact_company == "primary", "the shipped settings"
    chosen = crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {"contact_company": "first"}})
    assert chosen.contact_company == "first"
    with pytest.raises(common.SyncSettingsError, match=r"crm_to_oa\.contact_company must be one of primary, "
                                                       r"deal_company, first.*'main'"):
        crm_to_oa.CrmToOaSettings.from_settings({"crm_to_oa": {"contact_company": "main"}})
    with pytest.raises(bridge_settings.SettingsError, match=r"crm_to_oa\.contact_company"):
        bridge_settings.typed({"crm_to_oa": {"contact_company": "main"}})
    assert bridge_settings.load_typed().crm_to_oa.contact_company == "primary"
