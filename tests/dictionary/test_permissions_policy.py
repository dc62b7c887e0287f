"""The permission policy: the shipped example, masks, audiences, validation, and no leak under random input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import permissions
from bridge.dictionary import Dictionary, PolicyError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "include" / "permissions.yaml"
ROLES = ["employee", "project_manager", "sales_manager", "finance", "management", "hr"]


def test_shipped_policy_loads(policy: permissions.Policy) -> None:
    assert policy.version
    assert [r for r in policy.roles if r in ROLES] == ROLES  # other tasks may add roles (wallboard)
    assert policy.roles["employee"] == "普通员工"
    assert policy.roles["sales_manager"] == "销售主管"


def test_the_issue_example(policy: permissions.Policy) -> None:
    """An employee sees the customer name and project number only; a sales manager also the amount and phone."""
    initiation = {
        "instance_code": "I-1",
        "project_no": "P-1",
        "customer_name": "北京星辰科技有限公司",
        "contract_amount": "120000.00",
        "project_name": "ERP",
        "customer_id": "3001",
    }
    assert policy.project("project_initiation", initiation, "employee") == {
        "project_no": "P-1",
        "customer_name": "北京星辰科技有限公司",
    }
    assert policy.project(
        "company", {"name": "北京星辰科技有限公司", "uscc": "x", "phone": "010-1"}, "employee"
    ) == {"name": "北京星辰科技有限公司"}
    deal = {"crm_id": "5", "deal_name": "ERP", "contract_amount": "120000.00", "project_no": "P-1"}
    assert policy.project("deal", deal, "employee") == {"project_no": "P-1"}
    assert policy.project("contact", {"mobile": "13812345678"}, "employee") == {}
    manager_deal = policy.project("deal", deal, "sales_manager")
    assert manager_deal["contract_amount"] == "120000.00"
    assert policy.project("contact", {"mobile": "13812345678"}, "sales_manager") == {"mobile": "13812345678"}
    assert policy.project("project_initiation", initiation, "sales_manager")["contract_amount"] == "120000.00"


def test_masks(policy: permissions.Policy) -> None:
    contact = {"mobile": "13812345678", "email": "zhang.san@example.com", "full_name": "张三"}
    assert policy.project("contact", contact, "project_manager") == {
        "mobile": "138****5678",
        "email": "z***@example.com",
        "full_name": "张三",
    }
    company = {"uscc": "91110105MA01ABCD2X", "phone": "010-12345678", "name": "星辰"}
    assert policy.project("company", company, "sales_manager")["uscc"] == "9111**********CD2X"
    assert policy.project("company", company, "finance")["phone"] == "010-****5678"
    assert policy.mask_all("company", company) == {
        "uscc": "9111**********CD2X",
        "phone": "010-****5678",
        "name": "星辰",
    }
    assert policy.mask_all("contact", {"mobile": None, "extra": "x"}) == {"mobile": None, "extra": "x"}
    assert permissions.mask_value("name", "张三丰") == "张**"
    assert permissions.mask_value("full", "anything") == "***"
    assert permissions.mask_value("email", "not-an-email") == "***"


def test_allowed_and_audiences(policy: permissions.Policy) -> None:
    assert policy.allowed("contact", "mobile", "project_manager")  # masked still counts as allowed
    assert not policy.allowed("deal", "contract_amount", "employee")
    assert not policy.allowed("deal", "no_such_field", "management")
    assert policy.mask_of("contact", "mobile", "project_manager") == "mobile"
    assert policy.audience("form", "project_initiation") == "sales_manager"
    assert policy.audience("notice", "contract_amount_notice") == "finance"
    assert policy.audience("form", "contract_amount_notice") == "finance"
    assert policy.audience("crm_write", "expense_claim") == "sales_manager"
    assert policy.audience("crm_write", "deal") == "sales_manager"
    assert policy.audience("report", "daily_report") == "management"
    assert policy.audience("export", "quarantine") == "sales_manager"
    with pytest.raises(PolicyError, match=r"audiences\.report"):
        policy.audience("report", "weekly")
    with pytest.raises(PolicyError, match="受众类型"):
        policy.audience("fax", "x")


def test_unknown_role_or_entity_is_an_error(policy: permissions.Policy) -> None:
    with pytest.raises(PolicyError) as info:
        policy.project("deal", {}, "intern")
    assert info.value.issues[0].role == "intern"
    with pytest.raises(PolicyError, match="customer"):
        policy.project("customer", {}, "employee")


def test_load_caches(tmp_path: Path, dictionary: Dictionary) -> None:
    copy = tmp_path / "permissions.yaml"
    copy.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    first = permissions.load(copy, dictionary=dictionary)
    assert permissions.load(copy, dictionary=dictionary) is first


BROKEN = [
    pytest.param(
        "employee:        {fields: [name]}",
        "employee:",
        "intern:",
        ["角色 intern", "实体 company", "未在 roles"],
        id="unknown-role",
    ),
    pytest.param(
        "employee:        {fields: [name]}",
        "[name]",
        "[name, secret]",
        ["实体 company", "字段 secret"],
        id="unknown-field",
    ),
    pytest.param(
        "  company:", "company:", "customer:", ["实体 customer", "不在数据字典"], id="unknown-entity"
    ),
    pytest.param(
        "masks: {uscc: id_number",
        "uscc: id_number",
        "uscc: idnum",
        ["字段 uscc", "idnum"],
        id="unknown-mask-kind",
    ),
    pytest.param(
        "employee:        {fields: [project_no]}",
        "{fields: [project_no]}",
        "{fields: [project_no], masked: [deal_name]}",
        ["实体 deal", "字段 deal_name", "masks 没有"],
        id="masked-without-kind",
    ),
    pytest.param(
        "project_manager: {fields: [crm_id, name,",
        "masked: [uscc, phone]",
        "masked: [uscc, name]",
        ["字段 name", "出现了两次"],
        id="field-twice",
    ),
    pytest.param(
        "masks: {mobile: mobile",
        "email: email}",
        "email: email, modified_at: full}",
        ["字段 modified_at", "只有文本字段"],
        id="mask-on-non-text",
    ),
    pytest.param(
        "project_initiation: sales_manager",
        "sales_manager",
        "boss",
        ["boss", "未定义"],
        id="audience-unknown-role",
    ),
    pytest.param(
        "project_initiation: sales_manager",
        "sales_manager",
        "finance",
        ["受众不一致", "数据字典写 sales_manager"],
        id="audience-disagrees-with-dictionary",
    ),
    pytest.param("version:", 'version: "', '# version: "', ["缺少 version"], id="version-missing"),
]


@pytest.mark.parametrize(("anchor", "old", "new", "expected"), BROKEN)
def test_broken_policy_fails_naming_role_entity_field(
    broken_copy: Callable[..., tuple[Path, int]],
    dictionary: Dictionary,
    anchor: str,
    old: str,
    new: str,
    expected: list[str],
) -> None:
    path, _ = broken_copy(SHIPPED, anchor, old, new)
    with pytest.raises(PolicyError) as info:
        permissions.build(path, dictionary)
    message = str(info.value)
    for word in expected:
        assert word in message, f"{word!r} missing from:\n{message}"
    assert str(path) in message


def test_required_widget_hidden_from_the_audience_fails(
    broken_copy: Callable[..., tuple[Path, int]], dictionary: Dictionary
) -> None:
    # The sales manager may no longer see the contract amount: the 立项申请 form cannot be filled.
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "deal:")
    anchor = next(line for line in lines[start:] if "sales_manager:" in line)
    path, _ = broken_copy(
        SHIPPED, "crm_id, deal_name, stage, contract_amount,", "contract_amount, ", "", after=anchor.strip()
    )
    with pytest.raises(PolicyError) as info:
        permissions.build(path, dictionary)
    issue = next(i for i in info.value.issues if i.field == "contract_amount")
    assert issue.role == "sales_manager"
    assert issue.entity == "deal"
    assert "必填控件 contract_amount" in issue.message


def test_write_back_field_hidden_from_crm_write_audience_fails(
    edited_copy: Callable[..., Path], dictionary: Dictionary
) -> None:
    path = edited_copy(
        SHIPPED,
        ("    deal: sales_manager", "    deal: project_manager"),
        (
            "oa_instance_code, project_no,\n                 approval_status, approval_decided_at, project_stage]",
            "project_no, approval_status]",
        ),
        name="p.yaml",
    )
    with pytest.raises(PolicyError) as info:
        permissions.build(path, dictionary)
    hidden = {i.field for i in info.value.issues if "回写字段" in i.message}
    assert hidden == {"oa_instance_code", "approval_decided_at", "project_stage"}


# ---------------------------------------------------------------- no leaks (property-based)
VALUE = (
    st.none()
    | st.text(max_size=24)
    | st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
    | st.emails()
    | st.integers()
)


@st.composite
def records(draw: st.DrawFn, dictionary: Dictionary) -> tuple[str, dict[str, Any]]:
    entity = draw(st.sampled_from(sorted(dictionary.entities)))
    names = sorted(dictionary.entities[entity].fields)
    keys = draw(st.lists(st.sampled_from(names), unique=True)) + draw(
        st.lists(st.text(min_size=1, max_size=8), max_size=3)
    )  # junk keys must never leave either
    return entity, {k: draw(VALUE) for k in keys}


def _check_projection(
    policy: permissions.Policy, entity: str, record: dict[str, Any], role: str, out: dict[str, Any]
) -> None:
    visibility = policy.visibility(entity, role)
    assert set(out) <= set(visibility)  # nothing outside the allow-list
    assert set(out) == {k for k in record if k in visibility}
    for name, value in out.items():
        raw = record[name]
        kind = visibility[name]
        if kind is None:
            assert value == raw
        elif raw is None:
            assert value is None
        else:
            assert value == permissions.mask_value(kind, raw)
            text = str(raw)
            if text.strip("*"):
                assert value != text  # never the clear value where a mask applies
                assert "*" in value


@settings(max_examples=400, deadline=None)
@given(data=st.data(), role=st.sampled_from(ROLES))
def test_project_never_leaks(
    dictionary: Dictionary, policy: permissions.Policy, data: st.DataObject, role: str
) -> None:
    entity, record = data.draw(records(dictionary))
    _check_projection(policy, entity, record, role, policy.project(entity, record, role))


@pytest.fixture(scope="module", params=["shipped", "stricter"])
def form_policy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dictionary: Dictionary
) -> permissions.Policy:
    """The shipped policy, and a stricter one under which the 立项申请 audience is denied or masked more fields."""
    text = SHIPPED.read_text(encoding="utf-8")
    if request.param == "stricter":
        old = (
            "fields: [crm_id, last_name, first_name, full_name, mobile, job_title, company_id, owner_id, "
            "modified_at]\n        masked: [email]"
        )
        assert old in text
        assert "masked: [uscc]\n" in text
        text = text.replace(
            old,
            "fields: [crm_id, last_name, first_name, job_title, company_id, owner_id, "
            "modified_at]\n        masked: [mobile, email]",
        )
        text = text.replace("masked: [uscc]\n", "masked: []\n")
    path = tmp_path_factory.mktemp("policy") / "permissions.yaml"
    path.write_text(text, encoding="utf-8")
    return permissions.build(path, dictionary)


def test_stricter_policy_really_hides_form_fields(
    dictionary: Dictionary, form_policy: permissions.Policy
) -> None:
    sources = {
        "deal": {"crm_id": "1", "deal_name": "X", "contract_amount": "1.00"},
        "company": {"crm_id": "2", "name": "Y", "uscc": "91110105MA01ABCD2X"},
        "contact": {"full_name": "张三", "mobile": "13812345678"},
    }
    sent = {w["id"]: w["value"] for w in dictionary.fill_form("project_initiation", sources, form_policy)}
    if form_policy.allowed("company", "uscc", "sales_manager"):
        assert sent["customer_uscc"] == "9111**********CD2X"
        assert sent["contact_mobile"] == "13812345678"
    else:
        assert "customer_uscc" not in sent
        assert "contact_name" not in sent
        assert sent["contact_mobile"] == "138****5678"
    assert sent["contract_amount"] == 1.0


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fill_form_never_leaks(
    dictionary: Dictionary, form_policy: permissions.Policy, data: st.DataObject
) -> None:
    policy = form_policy
    form_name = data.draw(st.sampled_from(["project_initiation", "contract_amount_notice"]))
    form = dictionary.forms[form_name]
    role = policy.audience("form", form_name)
    sources: dict[str, dict[str, Any]] = {}
    for head in ("deal", "company", "contact", "notice"):
        entity = form.entity if head == "notice" else head
        assert entity is not None
        names = sorted(dictionary.entities[entity].fields)
        keys = data.draw(st.lists(st.sampled_from(names), unique=True))
        sources[head] = {k: data.draw(VALUE) for k in keys}
    values = dictionary.fill_form(form_name, sources, policy)
    by_widget = {w.id: w for w in form.widgets}
    for item in values:
        widget = by_widget[item["id"]]
        assert widget.source is not None
        head, _, name = widget.source.partition(".")
        entity = form.entity if head == "notice" else head
        assert entity is not None
        kind = policy.mask_of(entity, name, role)
        assert policy.allowed(entity, name, role), f"{widget.source} left for {role}"
        raw = sources[head][name]
        if kind is not None:
            assert item["value"] == permissions.mask_value(kind, raw)
            if str(raw).strip("*"):
                assert str(raw) != item["value"]
    # Every value a form sends is rendered from a projected record: no denied field appears anywhere.
    sent = {w["id"] for w in values}
    for widget in form.widgets:
        assert widget.source is not None
        head, _, name = widget.source.partition(".")
        entity = form.entity if head == "notice" else head
        assert entity is not None
        if not policy.allowed(entity, name, role):
            assert widget.id not in sent


# ---------------------------------------------------------------- hr, and who may receive what (issue 14)


def test_hr_is_a_real_role_that_sees_people_and_approvals_but_no_money(
    policy: permissions.Policy, dictionary: Dictionary
) -> None:
    assert policy.roles["hr"] == "人力资源部"
    for entity in dictionary.entities.values():
        seen = policy.visibility(entity.name, "hr")
        money = [f for f in seen if entity.fields[f].type == "amount"]
        assert money == [], f"hr sees amounts of {entity.name}: {money}"
        personal = [f for f in seen if entity.fields[f].format in ("mobile_cn", "phone_cn", "email")]
        assert personal == [], f"hr sees customer contact data of {entity.name}: {personal}"
    assert {"applicant_id", "department_id", "start_date", "end_date"} <= set(
        policy.visibility("travel_request", "hr")
    )
    assert "estimated_cost" not in policy.visibility("travel_request", "hr")


def test_covers_says_who_may_receive_a_file_built_for_another_role(policy: permissions.Policy) -> None:
    assert policy.covers("management", "management")
    assert not policy.covers("sales_manager", "management")  # no uscc in clear, no contact owner ...
    assert not policy.covers("management", "sales_manager")  # ... and 管理层 sees contact phones masked
    assert not policy.covers("employee", "sales_manager")
    assert policy.covers("finance", "employee")
    assert policy.roles_covering(policy.audience("report", "daily_report")) == ["management"]
    with pytest.raises(PolicyError, match="boss"):
        policy.covers("boss", "employee")
