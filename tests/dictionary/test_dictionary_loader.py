"""The dictionary loader: the shipped file loads; every kind of mistake is reported by file, line, entity and field."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.dictionary import Dictionary, DictionaryError, build, load

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "include" / "dictionary.yaml"


def test_shipped_dictionary_loads_with_every_entity_and_form(dictionary: Dictionary) -> None:
    assert dictionary.version
    assert set(dictionary.entities) == {
        "company",
        "contact",
        "deal",
        "project_initiation",
        "expense_claim",
        "travel_request",
        "visit_plan",
        "contract_amount_notice",
        "deal_void_notice",
        # customer journey (issue 20): read_by hook, no form, no CRM object
        "campaign",
        "marketing_event",
        "event_participation",
        "contact_source",
        "feedback_submission",
        "performance_review",
    }
    assert {f.name for f in dictionary.forms.values() if f.direction == "crm_to_oa"} == {
        "project_initiation",
        "contract_amount_notice",
        "deal_void_notice",
    }
    assert dictionary.forms["project_initiation"].audience == "sales_manager"
    assert dictionary.forms["contract_amount_notice"].entity == "contract_amount_notice"
    # Required widgets come from the OA entity's required fields.
    required = {w.id for w in dictionary.forms["project_initiation"].widgets if w.required}
    assert required == {"project_name", "deal_id", "customer_id", "customer_name", "contract_amount"}
    assert set(dictionary.crm_activities) == {"expense_claim", "travel_request", "visit_plan"}


def test_crm_properties_cover_every_read_field_and_nothing_derived(dictionary: Dictionary) -> None:
    props = dictionary.crm_properties("contact")
    assert "mobilephone" in props
    assert "hs_lastmodifieddate" in props
    # a contact's company comes from the v4 associations (primary first), not associatedcompanyid,
    # which HubSpot leaves empty for a contact linked by an unlabeled association
    assert "associatedcompanyid" not in props
    assert all(p for p in props)
    assert len(props) == len(set(props))
    deal_props = dictionary.crm_properties("deal")
    assert "amount" in deal_props
    assert "oa_project_no" in deal_props
    assert all(p for p in deal_props)  # the association field (company_id) has no property


def test_hash_fields_are_own_system_fields_without_modification_time(dictionary: Dictionary) -> None:
    deal = dictionary.hash_fields("deal")
    assert "contract_amount" in deal
    assert "stage" in deal
    assert "modified_at" not in deal
    assert not {"project_no", "approval_status", "oa_instance_code", "project_stage"} & set(deal)
    initiation = dictionary.hash_fields("project_initiation")
    assert "approval_status" in initiation
    assert "updated_at" not in initiation
    assert "contract_amount" not in initiation  # copied from the CRM, not the OA's own
    assert "full_name" not in dictionary.hash_fields("contact")  # derived


def test_load_caches_by_path_and_mtime(tmp_path: Path) -> None:
    copy = tmp_path / "dictionary.yaml"
    copy.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    first = load(copy)
    assert load(copy) is first
    copy.write_text(
        SHIPPED.read_text(encoding="utf-8").replace('version: "', 'version: "x', 1), encoding="utf-8"
    )
    later = time.time() + 5
    os.utime(copy, (later, later))
    second = load(copy)
    assert second is not first
    assert second.version.startswith("x")


def case(
    anchor: str, old: str, new: str, after: str | None, expected: list[str], *, id: str, exact: bool = True
) -> object:
    """One broken copy: on the first line with ``anchor`` and ``old`` (after ``after``), ``old`` → ``new``.

    ``expected``: words the message must contain (entity, field, what). ``exact``: the error names the
    changed line (False: a missing key is reported at its mapping; a value map lacking a spelling at
    the field that needs it).
    """
    return pytest.param(anchor, old, new, after, expected, exact, id=id)


BROKEN = [
    case(
        "stage:",
        "value_map: deal_stage",
        "value_map: deal_stages",
        None,
        ["实体 deal", "字段 stage", "deal_stages", "不存在"],
        id="value_map-missing",
    ),
    case(
        "deal_name:",
        "owner: sales",
        "owner: marketting",
        None,
        ["实体 deal", "字段 deal_name", "marketting", "departments"],
        id="owner-not-department",
    ),
    case(
        "{id: project_name,",
        "source: deal.deal_name",
        "source: deal.dealname",
        "forms:",
        ["project_name", "dealname", "实体 deal 没有字段"],
        id="widget-source-unknown-field",
    ),
    case(
        "{id: customer_name,",
        "source: company.name",
        "source: customer.name",
        "forms:",
        ["customer_name", "实体 'customer' 不存在"],
        id="widget-source-unknown-entity",
    ),
    case(
        "{id: changed_at,",
        "notice.changed_at",
        "notice.changed_on",
        "forms:",
        ["changed_at", "notice.changed_on", "contract_amount_notice"],
        id="widget-source-notice-field",
    ),
    case(
        "报销事由, type: text",
        "oa: reason,",
        "oa: reasons,",
        None,
        ["实体 expense_claim", "字段 reason", "reasons", "不在表单 expense_claim 上"],
        id="oa-widget-not-on-form",
    ),
    case(
        "customer_status: {label",
        "value_map: customer_status, ",
        "",
        "entities:",
        ["实体 company", "字段 customer_status", "缺少 value_map"],
        id="enum-without-value-map",
    ),
    case(
        "industry:",
        "type: string,",
        "type: string, value_map: customer_status,",
        None,
        ["实体 company", "字段 industry", "只有 enum"],
        id="value-map-on-non-enum",
    ),
    case(
        "won: [delivered]",
        "[delivered]",
        "[delivered, shipped]",
        None,
        ["值映射 deal_stage", "shipped", "未知值"],
        id="transition-unknown-target",
    ),
    case(
        "won: []",
        "won: []",
        "wonn: []",
        None,
        ["值映射 customer_status", "wonn", "缺少值 'won'"],
        id="transition-unknown-key",
    ),
    case(
        "uscc:",
        "format: uscc",
        "format: uscc18",
        "entities:",
        ["实体 company", "字段 uscc", "uscc18", "未知"],
        id="format-unknown",
    ),
    case(
        "mobile:",
        "type: string, format: mobile_cn",
        "type: amount, format: mobile_cn",
        None,
        ["实体 contact", "字段 mobile", "不适用于类型 amount"],
        id="format-type-mismatch",
    ),
    case(
        "full_name:",
        "{first_name}",
        "{given_name}",
        None,
        ["实体 contact", "字段 full_name", "given_name"],
        id="derive-unknown-field",
    ),
    case(
        "oa_purpose: reason",
        "oa_purpose: reason",
        "oa_purpose: reasons",
        "crm_activities:",
        ["实体 expense_claim", "字段 oa_purpose", "reasons"],
        id="activity-unknown-field",
    ),
    case(
        'hs_note_body: "费用报销',
        "{serial_number}",
        "{serial_no}",
        "crm_activities:",
        ["实体 expense_claim", "字段 hs_note_body", "serial_no"],
        id="activity-template-unknown-field",
    ),
    case(
        "first_name:",
        "crm: firstname",
        "crm: lastname",
        None,
        ["实体 contact", "字段 first_name", "last_name", "lastname"],
        id="two-fields-one-crm-property",
    ),
    case(
        "{canonical: intent,",
        "canonical: intent,",
        "canonical: prospect,",
        None,
        ["值映射 customer_status", "prospect", "重复"],
        id="duplicate-canonical-value",
    ),
    case(
        "{canonical: qualified,",
        "crm: qualifiedtobuy",
        "crm: appointmentscheduled",
        None,
        ["值映射 deal_stage", "appointmentscheduled", "重复"],
        id="duplicate-crm-value",
    ),
    case("version:", 'version: "', '# version: "', None, ["缺少 version"], id="version-missing", exact=False),
    case(
        "city:            {label: 城市",
        "owner: sales",
        "requried: true, owner: sales",
        None,
        ["实体 company", "字段 city", "requried"],
        id="unknown-key-typo",
    ),
    case(
        "id_field: crm_id",
        "id_field: crm_id",
        "id_field: hubspot_id",
        None,
        ["实体 company", "hubspot_id"],
        id="id-field-missing",
    ),
    case(
        "from_deal_stage: [contract]",
        "[contract]",
        "[signed]",
        None,
        ["值映射 project_stage", "signed"],
        id="derived-value-unknown",
    ),
    case(
        "address:",
        "system_of_record: crm",
        "system_of_record: erp",
        None,
        ["实体 company", "字段 address", "erp"],
        id="system-of-record-invalid",
    ),
    case(
        "{canonical: won,      label: 成交客户",
        ", crm: customer",
        "",
        None,
        ["实体 company", "字段 customer_status", "缺少 crm"],
        id="enum-value-without-crm-spelling",
        exact=False,
    ),
    case(
        "job_title:",
        "crm: jobtitle, ",
        "",
        None,
        ["实体 contact", "字段 job_title", "只能有 crm"],
        id="crm-field-without-source",
    ),
    case(
        "approval_status: {label",
        'oa: "@status"',
        'oa: "@state"',
        "project_initiation:",
        ["实体 project_initiation", "字段 approval_status", "@state"],
        id="oa-attribute-unknown",
    ),
    case(
        "when_status: [APPROVED]",
        "[APPROVED]",
        "[APPROVED, DONE]",
        "crm_activities:",
        ["实体 expense_claim", "DONE"],
        id="activity-status-unknown",
    ),
    case(
        "{id: project_stage,",
        "value_map: project_stage",
        "value_map: customer_status",
        "forms:",
        ["project_stage", "from_deal_stage"],
        id="widget-value-map-unrelated",
    ),
    case(
        "{id: contract_amount, type: amount",
        "source: deal.contract_amount",
        "source: deal.deal_name",
        "forms:",
        ["contract_amount", "amount 控件不能填入 string"],
        id="widget-type-mismatch",
    ),
]


@pytest.mark.parametrize(("anchor", "old", "new", "after", "expected", "exact"), BROKEN)
def test_broken_copy_fails_naming_the_field(
    broken_copy: Callable[..., tuple[Path, int]],
    anchor: str,
    old: str,
    new: str,
    after: str | None,
    expected: list[str],
    exact: bool,
) -> None:
    path, line = broken_copy(SHIPPED, anchor, old, new, after=after)
    with pytest.raises(DictionaryError) as info:
        build(path)
    message = str(info.value)
    for word in expected:
        assert word in message, f"{word!r} missing from:\n{message}"
    assert str(path) in message
    # The message points at the changed line (a missing key is reported at its mapping; a value map
    # lacking a spelling at the field that needs it).
    lines = {issue.line for issue in info.value.issues}
    if exact:
        assert line in lines, (line, lines)
    else:
        assert lines
        assert None not in lines


def test_broken_copy_points_at_the_exact_line(broken_copy: Callable[..., tuple[Path, int]]) -> None:
    path, line = broken_copy(SHIPPED, "stage:", "value_map: deal_stage", "value_map: deal_stages")
    with pytest.raises(DictionaryError) as info:
        build(path)
    [issue] = info.value.issues
    assert (issue.entity, issue.field, issue.line) == ("deal", "stage", line)
    assert f"{path}:{line}" in str(info.value)


def test_every_problem_is_reported_not_only_the_first(edited_copy: Callable[..., Path]) -> None:
    path = edited_copy(
        SHIPPED,
        ("value_map: deal_stage, crm: dealstage", "value_map: deal_stages, crm: dealstage"),
        ('derive: "{last_name}{first_name}"', 'derive: "{last_name}{given_name}"'),
        ("format: uscc,", "format: uscc18,"),
        name="three.yaml",
    )
    with pytest.raises(DictionaryError) as info:
        build(path)
    fields = {(i.entity, i.field) for i in info.value.issues}
    assert {("deal", "stage"), ("contact", "full_name"), ("company", "uscc")} <= fields
    assert "3 处错误" in str(info.value)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("industry:"))
    lines.insert(index + 1, lines[index])
    path = tmp_path / "dup.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(DictionaryError) as info:
        build(path)
    assert "'industry' 重复" in str(info.value)
    assert info.value.issues[0].line == index + 2


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("version: '1'\nentities:\n  deal: {label: 商机\n", encoding="utf-8")
    with pytest.raises(DictionaryError) as info:
        build(path)
    assert "YAML 语法错误" in str(info.value)
    assert info.value.issues[0].line is not None


def test_missing_file_and_wrong_top_level(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError, match="文件不存在"):
        build(tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(DictionaryError, match="顶层必须是映射"):
        build(listing)


def test_wrong_shapes_are_reported_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "shapes.yaml"
    path.write_text(
        "version: '1'\n"
        "departments: {sales: {label: 销售部}}\n"
        "value_maps: {m: {label: M, values: oops}}\n"
        "entities:\n"
        "  deal: {label: 商机, system: crm, crm_object: deals, id_field: a, modified_field: b, fields: [1, 2]}\n"
        "  other: 7\n"
        "forms: {f: {label: F, direction: sideways, widgets: {}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(DictionaryError) as info:
        build(path)
    message = str(info.value)
    assert "values 必须是非空列表" in message
    assert "fields 必须是映射" in message
    assert "实体 other 必须是映射" in message
    assert "direction 必须是 crm_to_oa 或 oa_to_crm" in message
    assert "widgets 必须是非空列表" in message


@pytest.mark.parametrize(
    ("old", "new", "prop", "message"),
    [
        (
            "oa_purpose: reason",
            "oa_purpose: reasons",
            "oa_purpose",
            "属性 oa_purpose 引用了实体 expense_claim 中不存在的字段 'reasons'（常量请写成 =reasons）；已有: ",
        ),
        (
            "：{reason}，",
            "：{reasons}，",
            "hs_note_body",
            "属性 hs_note_body 的模板引用了实体 expense_claim 中不存在的字段 {reasons}；已有: ",
        ),
    ],
    ids=["field", "template"],
)
def test_activity_property_naming_an_unknown_field_is_an_error(
    broken_copy: Callable[..., tuple[Path, int]], old: str, new: str, prop: str, message: str
) -> None:
    path, line = broken_copy(SHIPPED, old, old, new, after="crm_activities:")
    with pytest.raises(DictionaryError) as info:
        build(path)
    [issue] = info.value.issues
    assert (issue.entity, issue.field, issue.line) == ("expense_claim", prop, line)
    assert issue.message.startswith(message)
    assert issue.message.endswith("。")
