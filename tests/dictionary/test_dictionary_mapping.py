"""Vendor records ⇄ canonical records: the world's clean and dirty records, hostile input, hashes, forms."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import permissions
from bridge.dictionary import Dictionary, ValueEntry, ValueMap, from_canonical, to_canonical
from bridge.dictionary.model import Problem
from sandbox.common.world import COMPANY_ID_BASE, World

ROOT = Path(__file__).resolve().parents[2]
CrmFn = Callable[[Any], dict[str, Any]]
OaFn = Callable[..., dict[str, Any]]

# What each injected defect must produce (World docstring: dirty the way real data is).
EXPECTED = {
    "companies": {
        "missing_uscc": ["missing_required"], "bad_uscc": ["invalid_format"], "bad_phone": ["invalid_format"],
        "full_width_name": [],
    },
    "contacts": {
        "mobile_formatted": [], "mobile_full_width": [], "email_upper": [], "bad_mobile": ["invalid_format"],
        "missing_mobile": ["missing_required"],
    },
    "deals": {
        "missing_amount": ["missing_required"], "unmapped_stage": ["unmapped_value"],
        "negative_amount": ["invalid_format"],
    },
}
ENTITY = {"companies": "company", "contacts": "contact", "deals": "deal"}
FIELD = {"missing_uscc": "uscc", "bad_uscc": "uscc", "bad_phone": "phone", "bad_mobile": "mobile",
         "missing_mobile": "mobile", "missing_amount": "contract_amount", "unmapped_stage": "stage",
         "negative_amount": "contract_amount"}


def _objects(world: World, kind: str) -> list[Any]:
    return list({"companies": world.iter_companies, "contacts": world.iter_contacts, "deals": world.iter_deals}[kind]())


@pytest.mark.parametrize("kind", ["companies", "contacts", "deals"])
def test_world_records_give_the_right_problem_per_defect(
    dictionary: Dictionary, world: World, as_crm: CrmFn, kind: str
) -> None:
    seen: set[str] = set()
    for obj in _objects(world, kind):
        result = dictionary.from_crm(ENTITY[kind], as_crm(obj), obj.associations)
        defect = obj.properties.get("_defect")
        if defect == "dup_variant" and "_duplicate_of" not in obj.properties:
            defect = "bad_phone"  # company 0 has nothing to copy: the world gives it a bad phone instead
        if defect == "dup_variant":  # copies an earlier company's name and USCC: its USCC problems too
            original = world.company(int(obj.properties["_duplicate_of"]) - COMPANY_ID_BASE - 1)
            inherited = [p.code for p in dictionary.from_crm("company", as_crm(original)).problems if p.field == "uscc"]
            assert result.codes == inherited
            continue
        expected = EXPECTED[kind][defect] if defect else []
        assert result.codes == expected, (obj.id, defect, result.problems)
        if defect:
            seen.add(defect)
        if expected:
            [problem] = result.problems
            assert problem.field == FIELD[defect]
            assert problem.entity == ENTITY[kind]
            assert obj.id in problem.message
            assert problem.department in dictionary.departments
        else:
            assert result.record[dictionary.entities[ENTITY[kind]].id_field] == obj.id
    assert seen == set(EXPECTED[kind])  # the world really produced every kind


def test_clean_values_and_cleaned_dirt(dictionary: Dictionary, world: World, as_crm: CrmFn) -> None:
    for obj in world.iter_contacts():
        defect = obj.properties.get("_defect")
        record = dictionary.from_crm("contact", as_crm(obj), obj.associations).record
        if defect in ("mobile_formatted", "mobile_full_width"):
            assert record["mobile"] is not None
            assert len(record["mobile"]) == 11
            assert record["mobile"].isdigit()
        if defect == "email_upper":
            assert record["email"] == obj.properties["email"].strip().lower()
        assert record["full_name"] == obj.properties["lastname"] + obj.properties["firstname"]
        assert record["company_id"] == obj.properties["associatedcompanyid"]


def test_deal_record_shape(dictionary: Dictionary, world: World, as_crm: CrmFn) -> None:
    obj = next(o for o in world.iter_deals() if not o.properties.get("_defect"))
    result = dictionary.from_crm("deal", as_crm(obj), obj.associations)
    record = result.record
    assert result.ok
    assert set(record) == set(dictionary.entities["deal"].fields)
    assert record["company_id"] == obj.associations["companies"][0]
    assert record["contract_amount"] == obj.properties["amount"]
    assert record["modified_at"].endswith("+00:00")
    assert len(record["modified_at"]) == 29
    assert dictionary.modified_ms("deal", record) == obj.modified_ms
    assert len(record["close_date"]) == 10
    assert dictionary.to_canonical("deal_stage", "crm", obj.properties["dealstage"]) == record["stage"]
    assert record["project_no"] is None
    assert dictionary.data_owner("deal", record) == obj.properties["hubspot_owner_id"]


def test_associations_from_the_object_and_missing_association(dictionary: Dictionary, world: World,
                                                              as_crm: CrmFn) -> None:
    obj = world.deal(3)
    payload = as_crm(obj)
    payload["associations"] = {"companies": {"results": [{"id": "3001", "type": "deal_to_company"}]}}
    assert dictionary.from_crm("deal", payload).record["company_id"] == "3001"
    result = dictionary.from_crm("deal", as_crm(obj), {"companies": []})
    assert "missing_required" in result.codes
    assert any(p.field == "company_id" for p in result.problems)


def test_top_level_fallbacks(dictionary: Dictionary) -> None:
    obj = {"id": "77", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00.5Z",
           "properties": {"dealname": "X", "dealstage": "closedwon", "amount": "1", "hubspot_owner_id": "9"}}
    result = dictionary.from_crm("deal", obj, {"companies": ["5"]})
    assert result.ok, result.problems
    assert result.record["crm_id"] == "77"
    assert result.record["modified_at"] == "2026-01-02T00:00:00.500+00:00"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ("not an object", None),
        ({"id": "1"}, None),
        ({"id": "1", "properties": ["a"]}, None),
        ({"id": "1", "properties": {"dealname": {"x": 1}}}, "deal_name"),
        ({"id": "1", "properties": {"dealname": 12}}, "deal_name"),
        ({"id": "1", "properties": {"dealname": "x" * 70_000}}, "deal_name"),
        ({"id": "1", "properties": {"dealname": "a\x00b"}}, "deal_name"),
        ({"id": "1", "properties": {"amount": "NaN"}}, "contract_amount"),
        ({"id": "1", "properties": {"amount": "Infinity"}}, "contract_amount"),
    ],
)
def test_hostile_crm_objects_become_problems(dictionary: Dictionary, obj: Any, field: str | None) -> None:
    result = dictionary.from_crm("deal", obj)
    hostile = [p for p in result.problems if p.code == "hostile_input"]
    assert hostile, result.problems
    assert hostile[0].field == field
    assert set(result.record) == set(dictionary.entities["deal"].fields)
    if field is not None:
        assert result.record[field] is None
        assert not any(p.code == "missing_required" and p.field == field for p in result.problems)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
CRM_PROPS = ["dealname", "dealstage", "amount", "closedate", "hs_lastmodifieddate", "hubspot_owner_id", "hs_object_id"]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    obj=JSON | st.fixed_dictionaries(
        {"id": JSON, "properties": st.dictionaries(st.sampled_from(CRM_PROPS), JSON | st.text(max_size=30))},
        optional={"associations": JSON, "updatedAt": JSON},
    ),
    associations=st.none() | JSON,
)
def test_from_crm_never_raises(dictionary: Dictionary, obj: Any, associations: Any) -> None:
    result = dictionary.from_crm("deal", obj, associations)
    assert set(result.record) == set(dictionary.entities["deal"].fields)
    assert all(isinstance(p, Problem) and p.message for p in result.problems)
    # A canonical value is always a str (or None): never a vendor's dict/list leaking through.
    assert all(v is None or isinstance(v, str) for v in result.record.values())
    dictionary.content_hash("deal", result.record)


# ---------------------------------------------------------------- OA
@pytest.mark.parametrize("approval", ["expense_claim", "travel_request", "visit_plan", "project_initiation"])
def test_world_instances_map(dictionary: Dictionary, world: World, as_oa: OaFn, approval: str) -> None:
    count = 0
    for inst in world.iter_oa_instances():
        if inst.approval != approval:
            continue
        result = dictionary.from_oa(approval, as_oa(inst))
        record = result.record
        link = next((w["value"] for w in inst.form if w["id"] == "customer_id"), None)
        amount = next((w["value"] for w in inst.form if w["type"] == "amount"), 0)
        expected = []
        if link == "":
            expected = ["missing_required"]
        elif isinstance(amount, float) and amount < 0:
            expected = ["invalid_format"]
        assert result.codes == expected, (inst.instance_code, result.problems)
        assert record["instance_code"] == inst.instance_code
        assert record["approval_status"] == inst.status
        assert record["applicant_id"] == inst.user_id
        assert dictionary.modified_ms(approval, record) == max(inst.start_ms, inst.end_ms)
        assert (record["decided_at"] is None) == (inst.end_ms == 0)
        if approval == "expense_claim":
            assert record["expense_type"] in {"transport", "lodging", "meals", "entertainment", "other"}
            assert record["amount"] is not None
            assert "." in record["amount"]
            assert len(record["expense_date"]) == 10
        count += 1
    assert count > 5


def test_updated_at_is_the_latest_timeline_entry(dictionary: Dictionary, world: World, as_oa: OaFn) -> None:
    inst = next(i for i in world.iter_oa_instances() if i.approval == "expense_claim" and i.end_ms)
    later = inst.end_ms + 86_400_000
    record = dictionary.from_oa("expense_claim", as_oa(inst, timeline_ms=[later])).record
    assert dictionary.modified_ms("expense_claim", record) == later


def _expense(world: World, as_oa: OaFn, **widgets: Any) -> dict[str, Any]:
    inst = next(i for i in world.iter_oa_instances() if i.approval == "expense_claim")
    form = [dict(w, value=widgets[w["id"]]) if w["id"] in widgets else w for w in inst.form]
    payload = as_oa(inst)
    payload["form"] = json.dumps(form, ensure_ascii=False)
    return payload


@pytest.mark.parametrize(
    ("widgets", "code", "field"),
    [
        ({"expense_type": "差旅补贴"}, "unmapped_value", "expense_type"),
        ({"amount": "abc"}, "invalid_format", "amount"),
        ({"amount": -5}, "invalid_format", "amount"),
        ({"amount": {"v": 1}}, "hostile_input", "amount"),
        ({"expense_date": "2026-02-30T00:00:00+08:00"}, "invalid_format", "expense_date"),
        ({"customer_id": ""}, "missing_required", "customer_id"),
        ({"reason": ["a"]}, "hostile_input", "reason"),
    ],
)
def test_oa_dirty_widgets(dictionary: Dictionary, world: World, as_oa: OaFn, widgets: dict[str, Any], code: str,
                          field: str) -> None:
    result = dictionary.from_oa("expense_claim", _expense(world, as_oa, **widgets))
    assert [(p.code, p.field) for p in result.problems] == [(code, field)]
    assert "「" in result.problems[0].message


@pytest.mark.parametrize("form", ["{not json", "[1, 2", "42", json.dumps({"id": "x"}), None])
def test_oa_bad_form_is_a_problem(dictionary: Dictionary, world: World, as_oa: OaFn, form: Any) -> None:
    payload = _expense(world, as_oa)
    payload["form"] = form
    result = dictionary.from_oa("expense_claim", payload)
    assert "hostile_input" in result.codes
    assert result.record["instance_code"] == payload["instance_code"]  # attributes still mapped


def test_oa_unknown_status_is_unmapped(dictionary: Dictionary, world: World, as_oa: OaFn) -> None:
    payload = _expense(world, as_oa)
    payload["status"] = "TRANSFERRED"
    result = dictionary.from_oa("expense_claim", payload)
    assert [(p.code, p.field) for p in result.problems] == [("unmapped_value", "approval_status")]
    assert "TRANSFERRED" in result.problems[0].message


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instance=JSON | st.fixed_dictionaries(
    {"instance_code": JSON, "status": JSON, "start_time": JSON, "end_time": JSON,
     "form": JSON | st.lists(st.fixed_dictionaries({"id": st.sampled_from(["amount", "reason", "expense_type"]),
                                                     "value": JSON}), max_size=4).map(json.dumps),
     "timeline": JSON}))
def test_from_oa_never_raises(dictionary: Dictionary, instance: Any) -> None:
    result = dictionary.from_oa("expense_claim", instance)
    assert set(result.record) == set(dictionary.entities["expense_claim"].fields)
    assert all(v is None or isinstance(v, str) for v in result.record.values())


# ---------------------------------------------------------------- content hash
def test_content_hash_ignores_notes_and_modification_time(dictionary: Dictionary, world: World,
                                                          as_crm: CrmFn) -> None:
    obj = next(o for o in world.iter_deals() if not o.properties.get("_defect"))
    base = as_crm(obj)
    edited = json.loads(json.dumps(base))
    edited["properties"]["description"] = "客户说下周再谈"  # notes only: not a mapped field
    edited["properties"]["hs_lastmodifieddate"] = "2030-01-01T00:00:00.000Z"
    h1 = dictionary.content_hash("deal", dictionary.from_crm("deal", base, obj.associations).record)
    h2 = dictionary.content_hash("deal", dictionary.from_crm("deal", edited, obj.associations).record)
    assert h1 == h2
    changed = json.loads(json.dumps(base))
    changed["properties"]["amount"] = "1.00"
    h3 = dictionary.content_hash("deal", dictionary.from_crm("deal", changed, obj.associations).record)
    assert h3 != h1


def test_content_hash_ignores_oa_owned_write_backs(dictionary: Dictionary, world: World, as_crm: CrmFn) -> None:
    obj = world.deal(1)
    record = dictionary.from_crm("deal", as_crm(obj), obj.associations).record
    echoed = dict(record, project_no="P2026-001", approval_status="APPROVED", oa_instance_code="X-1",
                  project_stage="executing", approval_decided_at="2026-01-01T00:00:00.000+00:00")
    assert dictionary.content_hash("deal", record) == dictionary.content_hash("deal", echoed)
    # ... and the write-back survives the CRM round trip without changing the hash.
    props = dict(as_crm(obj)["properties"], **dictionary.to_crm_properties("deal", echoed))
    again = dictionary.from_crm("deal", dict(as_crm(obj), properties=props), obj.associations).record
    assert again["project_no"] == "P2026-001"
    assert again["approval_status"] == "APPROVED"
    assert dictionary.content_hash("deal", again) == dictionary.content_hash("deal", record)


def test_content_hash_independent_of_key_order_and_stable_across_processes(dictionary: Dictionary) -> None:
    record = {"crm_id": "1", "deal_name": "数据中台项目", "stage": "won", "contract_amount": "10.00",
              "close_date": "2026-01-01", "owner_id": "7", "company_id": "3", "created_at": None}
    shuffled = dict(reversed(list(record.items())))
    digest = dictionary.content_hash("deal", record)
    assert dictionary.content_hash("deal", shuffled) == digest
    code = (
        "import json,sys; sys.path.insert(0, 'plugins'); from bridge.dictionary import build; from pathlib import Path;"
        "d = build(Path('include/dictionary.yaml'));"
        f"print(d.content_hash('deal', json.loads({json.dumps(json.dumps(record))})))"
    )
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert other.stdout.strip() == digest


def test_oa_hash_ignores_crm_copied_fields(dictionary: Dictionary) -> None:
    record = {"instance_code": "I1", "approval_status": "PENDING", "applicant_id": "u1", "created_at": None,
              "project_name": "A", "contract_amount": "1.00", "customer_name": "X"}
    same = dict(record, contract_amount="2.00", project_name="B")
    assert dictionary.content_hash("project_initiation", record) == dictionary.content_hash("project_initiation", same)
    assert dictionary.content_hash("project_initiation", record) != \
        dictionary.content_hash("project_initiation", dict(record, approval_status="APPROVED"))


# ---------------------------------------------------------------- transitions
def test_check_transition(dictionary: Dictionary) -> None:
    assert dictionary.check_transition("deal", {"stage": "negotiation"}, {"stage": "won"}) == []
    [problem] = dictionary.check_transition("deal", {"stage": "delivered"}, {"crm_id": "9", "stage": "lead"})
    assert problem.code == "invalid_transition"
    assert problem.field == "stage"
    assert "交付完成" in problem.message
    assert "初步接洽" in problem.message
    assert dictionary.check_transition("deal", None, {"stage": "lead"}) == []
    assert not dictionary.allowed_transition("approval_status", "APPROVED", "PENDING")
    assert dictionary.allowed_transition("approval_status", "REJECTED", "PENDING")


# ---------------------------------------------------------------- value maps
def test_shipped_value_maps_round_trip(dictionary: Dictionary) -> None:
    for vmap in dictionary.value_maps.values():
        for entry in vmap.values:
            for system in ("crm", "oa"):
                spelled = from_canonical(vmap, system, entry.canonical)
                if spelled is not None:
                    assert to_canonical(vmap, system, spelled) == entry.canonical
            assert vmap.label_of(entry.canonical) == entry.label
        assert vmap.to_canonical("crm", "__nope__") is None


SPELLING = st.text(alphabet="abcdefgh立项执行", min_size=1, max_size=6)


@given(st.lists(st.tuples(SPELLING, SPELLING, SPELLING), min_size=1, max_size=8,
                unique_by=(lambda t: t[0], lambda t: t[1], lambda t: t[2])),
       st.lists(SPELLING, max_size=5))
def test_value_map_property_round_trip(rows: list[tuple[str, str, str]], unknown: list[str]) -> None:
    vmap = ValueMap("m", "M", tuple(ValueEntry(c, f"标签{c}", crm=r, oa=o) for c, r, o in rows))
    for canonical, crm, oa in rows:
        assert vmap.from_canonical("crm", canonical) == crm
        assert vmap.to_canonical("crm", crm) == canonical
        assert vmap.from_canonical("oa", canonical) == oa
        assert vmap.to_canonical("oa", oa) == canonical
        assert vmap.allowed_transition(canonical, canonical)
    crm_values = {r for _, r, _ in rows}
    for value in unknown:
        if value not in crm_values:
            assert vmap.to_canonical("crm", value) is None


@given(st.sampled_from(["lead", "qualified", "proposal", "negotiation", "contract", "won", "delivered", "lost"]),
       st.sampled_from(["lead", "qualified", "proposal", "negotiation", "contract", "won", "delivered", "lost"]))
def test_deal_stage_transitions_follow_the_yaml(dictionary: Dictionary, old: str, new: str) -> None:
    vmap = dictionary.value_maps["deal_stage"]
    assert vmap.transitions is not None
    assert vmap.allowed_transition(old, new) == (old == new or new in vmap.transitions[old])


# ---------------------------------------------------------------- forms and CRM writes
def _sources(dictionary: Dictionary, world: World, as_crm: CrmFn, stage: str) -> dict[str, dict[str, Any]]:
    for obj in world.iter_deals():
        company_index = int(obj.associations["companies"][0]) - COMPANY_ID_BASE - 1
        company_obj = world.company(company_index)
        contact_obj = world.contact(company_index * world.contacts_per_company)
        if any(o.properties.get("_defect") for o in (obj, company_obj, contact_obj)):
            continue
        deal = dictionary.from_crm("deal", as_crm(obj), obj.associations).record
        deal["stage"] = stage
        company = dictionary.from_crm("company", as_crm(company_obj)).record
        contact = dictionary.from_crm("contact", as_crm(contact_obj), contact_obj.associations).record
        return {"deal": deal, "company": company, "contact": contact}
    raise AssertionError("the world has no clean deal with a clean customer and contact")


@pytest.mark.parametrize(("stage", "label"), [("contract", "立项"), ("won", "执行"), ("delivered", "结项"), ("lead", None)])
def test_fill_project_initiation(dictionary: Dictionary, policy: permissions.Policy, world: World, as_crm: CrmFn,
                                 stage: str, label: str | None) -> None:
    sources = _sources(dictionary, world, as_crm, stage)
    values = {w["id"]: w for w in dictionary.fill_form("project_initiation", sources, policy)}
    deal, company, contact = sources["deal"], sources["company"], sources["contact"]
    assert values["project_name"]["value"] == deal["deal_name"]
    assert values["deal_id"] == {"id": "deal_id", "type": "input", "value": deal["crm_id"]}
    assert values["contract_amount"]["value"] == float(deal["contract_amount"])
    assert values["close_date"]["value"] == deal["close_date"] + "T00:00:00+08:00"
    assert values["customer_name"]["value"] == company["name"]
    # sales_manager sees the USCC masked and the contact's mobile in clear (include/permissions.yaml).
    uscc = company["uscc"]
    assert values["customer_uscc"]["value"] == uscc[:4] + "*" * 10 + uscc[-4:]
    assert values["contact_mobile"]["value"] == contact["mobile"]
    assert values["contact_name"]["value"] == contact["full_name"]
    if label is None:
        assert "project_stage" not in values
    else:
        assert values["project_stage"] == {"id": "project_stage", "type": "radioV2", "value": label}
    assert dictionary.form_title("project_initiation", sources, policy) == f"立项申请：{deal['deal_name']}"


def test_fill_notice_uses_the_notice_values(dictionary: Dictionary, policy: permissions.Policy, world: World,
                                            as_crm: CrmFn) -> None:
    sources: dict[str, Any] = _sources(dictionary, world, as_crm, "won")
    sources["deal"]["project_no"] = "P-7"
    sources["notice"] = {"old_amount": "100.00", "new_amount": "250.50", "changed_at": "2026-11-26"}
    values = {w["id"]: w["value"] for w in dictionary.fill_form("contract_amount_notice", sources, policy)}
    assert values == {
        "project_no": "P-7", "project_name": sources["deal"]["deal_name"], "deal_id": sources["deal"]["crm_id"],
        "customer_name": sources["company"]["name"], "old_amount": 100.0, "new_amount": 250.5,
        "changed_at": "2026-11-26T00:00:00+08:00",
    }


def test_fill_form_rejects_inbound_and_unknown_forms(dictionary: Dictionary, policy: permissions.Policy) -> None:
    with pytest.raises(ValueError, match="outbound"):
        dictionary.fill_form("expense_claim", {}, policy)
    with pytest.raises(KeyError, match="unknown form"):
        dictionary.fill_form("nope", {}, policy)


def test_to_crm_properties(dictionary: Dictionary, world: World, as_crm: CrmFn) -> None:
    obj = next(o for o in world.iter_deals() if not o.properties.get("_defect"))
    record = dictionary.from_crm("deal", as_crm(obj), obj.associations).record
    props = dictionary.to_crm_properties("deal", record)
    assert "hs_object_id" not in props
    assert "hs_lastmodifieddate" not in props
    assert "createdate" not in props
    assert props["dealstage"] == obj.properties["dealstage"]
    assert props["amount"] == obj.properties["amount"]
    assert props["oa_project_no"] == ""  # None clears
    # Round trip: what we write reads back as the same canonical record.
    back = dictionary.from_crm("deal", dict(as_crm(obj), properties=dict(as_crm(obj)["properties"], **props)),
                               obj.associations).record
    assert back == record
    partial = dictionary.to_crm_properties("deal", {"approval_status": "REJECTED", "project_stage": "closed",
                                                    "approval_decided_at": "2026-11-26T10:25:01.123+00:00"})
    assert partial == {"oa_approval_status": "REJECTED", "oa_project_stage": "closed",
                       "oa_decision_time": "2026-11-26T10:25:01.123Z"}
    with pytest.raises(ValueError, match="stage"):
        dictionary.to_crm_properties("deal", {"stage": "not-a-stage"})


class _DenyAmount:
    """A projector that hides ``amount``: what the activity must then leave out."""

    def __init__(self, policy: permissions.Policy) -> None:
        self.policy = policy
        self.roles: list[str] = []

    def project(self, entity: str, record: Mapping[str, Any], role: str) -> dict[str, Any]:
        self.roles.append(role)
        return {k: v for k, v in self.policy.project(entity, record, role).items() if k != "amount"}


def test_activity_properties(dictionary: Dictionary, policy: permissions.Policy, world: World, as_oa: OaFn) -> None:
    inst = next(i for i in world.iter_oa_instances() if i.approval == "expense_claim" and i.status == "APPROVED")
    record = dictionary.from_oa("expense_claim", as_oa(inst)).record
    assert dictionary.activity_due("expense_claim", record)
    object_type, props = dictionary.activity_properties("expense_claim", record, policy)
    assert object_type == "notes"
    assert props["oa_activity_type"] == "expense_claim"  # the HubSpot option value, not the label
    assert props["oa_amount"] == record["amount"]
    assert props["hs_note_body"] == (f"费用报销 {record['serial_number']}：{record['reason']}，金额 ¥{record['amount']}，"
                                     f"日期 {record['expense_date']}")
    assert props["hs_timestamp"].endswith("T16:00:00.000Z")  # midnight Asia/Shanghai
    hiding = _DenyAmount(policy)
    _, hidden = dictionary.activity_properties("expense_claim", record, hiding)
    assert hiding.roles == ["sales_manager"]
    assert "oa_amount" not in hidden
    assert record["amount"] not in hidden["hs_note_body"]
    visit = next(i for i in world.iter_oa_instances() if i.approval == "visit_plan")
    visit_record = dictionary.from_oa("visit_plan", as_oa(visit)).record
    object_type, props = dictionary.activity_properties("visit_plan", visit_record, policy)
    assert object_type == "meetings"
    assert props["hs_meeting_title"] == "客户拜访"
    assert not dictionary.activity_due("expense_claim", dict(record, approval_status="PENDING"))


# ---------------------------------------------------------------- the simulators accept what we send
def test_crm_writes_pass_the_crm_simulators_validation(dictionary: Dictionary, policy: permissions.Policy,
                                                       world: World, as_crm: CrmFn, as_oa: OaFn) -> None:
    crm_model = pytest.importorskip("sandbox.crm.model")
    defs = crm_model.build_properties(world.employees)
    for entity in ("company", "contact", "deal"):
        object_type = dictionary.entities[entity].crm_object
        missing = set(dictionary.crm_properties(entity)) - set(defs[object_type])
        assert not missing, f"{entity}: properties unknown to the CRM: {missing}"
    deal_obj = next(o for o in world.iter_deals() if not o.properties.get("_defect"))
    deal = dictionary.from_crm("deal", as_crm(deal_obj), deal_obj.associations).record
    write_back = dict(deal, oa_instance_code="X-1", project_no="202611260001", approval_status="APPROVED",
                      approval_decided_at="2026-11-26T10:25:01.123+00:00", project_stage="executing")
    projected = policy.project("deal", write_back, policy.audience("crm_write", "deal"))
    checked = crm_model.validate(defs["deals"], dictionary.to_crm_properties("deal", projected), creating=False,
                                 object_type="deals")
    assert checked.errors == []
    for approval in ("expense_claim", "travel_request", "visit_plan"):
        inst = next(i for i in world.iter_oa_instances() if i.approval == approval and i.status == "APPROVED")
        record = dictionary.from_oa(approval, as_oa(inst)).record
        object_type, props = dictionary.activity_properties(approval, record, policy)
        checked = crm_model.validate(defs[object_type], dict(props, oa_instance_code=inst.instance_code),
                                     creating=True, object_type=object_type)
        assert checked.errors == [], (approval, checked.errors)


def test_filled_forms_pass_the_oa_simulators_validation(dictionary: Dictionary, policy: permissions.Policy,
                                                         world: World, as_crm: CrmFn) -> None:
    definitions = pytest.importorskip("sandbox.oa.definitions")
    forms = pytest.importorskip("sandbox.oa.forms")
    by_key = {d.key: d for d in definitions.load_definitions(ROOT / "include" / "dictionary.yaml").values()}
    for stage in ("contract", "won", "delivered"):
        sources: dict[str, Any] = _sources(dictionary, world, as_crm, stage)
        sources["notice"] = {"old_amount": "100.00", "new_amount": "250.50", "changed_at": "2026-11-26"}
        sources["deal"]["project_no"] = "202611260001"
        for form in ("project_initiation", "contract_amount_notice"):
            values = dictionary.fill_form(form, sources, policy)
            parsed = forms.parse_form(json.dumps(values, ensure_ascii=False), by_key[form])
            assert [w["id"] for w in parsed] == [v["id"] for v in values]
            required = {w.id for w in by_key[form].widgets if w.required}
            assert required <= {v["id"] for v in values}
