"""Contacts keep their company when HubSpot links them by an unlabeled v4 association.

HubSpot's ``associatedcompanyid`` holds only a contact's primary company; a contact linked by an
unlabeled association has it empty. The bridge reads the company from the v4 associations (primary
first), so the 立项申请 still carries 客户联系人 / 联系电话 and data health finds no missing company."""

from __future__ import annotations

from tests.sync.sync_c2o_world import C2O, OWNER

from bridge.hub import store


def _unlabeled_contact(c2o: C2O, company: str, mobile: str = "13912345678") -> str:
    created = c2o.crm_act("/_sim/act/create", {"object_type": "contacts", "properties": {
        "lastname": "李", "firstname": "娜", "mobilephone": mobile, "email": "li.na@example.cn",
        "hubspot_owner_id": OWNER}})
    contact = str(created["id"])
    c2o.crm_act("/_sim/act/associate", {"from_type": "contacts", "from_id": int(contact), "to_type": "companies",
                                        "to_id": int(company)})
    return contact


def _staged_company(c2o: C2O, contact: str) -> str | None:
    with c2o.hub.connect() as conn:
        snap = store.get_snapshot(conn, "crm", "contact", contact)
    assert snap is not None
    return snap.payload.get("company_id")


def test_an_unlabeled_company_association_is_the_contact_s_company(c2o: C2O) -> None:
    company = c2o.create_company()
    contact = _unlabeled_contact(c2o, company)
    assert c2o.crm_object("contacts", contact).get("associatedcompanyid") in (None, ""), \
        "HubSpot leaves associatedcompanyid empty for an unlabeled association"
    deal = c2o.create_deal(company, stage="contractsent")
    _, loaded = c2o.sync()
    assert _staged_company(c2o, contact) == company
    with c2o.hub.connect() as conn:
        assert store.open_quarantine(conn, "crm_to_oa", "contact", contact) is None
    assert loaded.counts["instances_created"] == 1
    [instance] = c2o.instances_of(deal)
    assert instance["widgets"]["contact_name"] == "李娜"
    assert instance["widgets"]["contact_mobile"] == "13912345678"


def test_the_primary_company_wins_over_other_companies(c2o: C2O) -> None:
    first, second = c2o.create_company(), c2o.create_company()
    contact = _unlabeled_contact(c2o, first)
    # second becomes the primary company although first was linked earlier (and has the lower id)
    c2o.crm_act("/_sim/act/associate", {"from_type": "contacts", "from_id": int(contact), "to_type": "companies",
                                        "to_id": int(second), "primary": True})
    assert c2o.crm_object("contacts", contact)["associatedcompanyid"] == second
    c2o.extract()
    assert _staged_company(c2o, contact) == second
    # the primary association removed: the remaining (unlabeled) company is the contact's company
    c2o.crm_act("/_sim/act/associate", {"from_type": "contacts", "from_id": int(contact), "to_type": "companies",
                                        "to_id": int(second), "remove": True})
    c2o.edit("contacts", contact, {"jobtitle": "总监"})  # association changes do not move hs_lastmodifieddate
    c2o.tick(5)
    c2o.extract()
    assert _staged_company(c2o, contact) == first
