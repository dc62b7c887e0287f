"""Document classes of the permission policy (issue 19): who may open, who only sees the row, load-time checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import permissions
from bridge.dictionary import Dictionary, PolicyError
from bridge.permissions import DocumentAccess

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "include" / "permissions.yaml"
OPEN, LISTED, NONE = DocumentAccess.OPEN, DocumentAccess.LISTED, DocumentAccess.NONE


def test_shipped_classes_per_role(policy: permissions.Policy) -> None:
    """The shipped rules: contracts for sales, finance and management; invoices for finance and management."""
    table = {
        role: tuple(policy.document_access(role, c) for c in ("contract", "invoice", "other"))
        for role in policy.roles
    }
    assert table == {
        "employee": (NONE, NONE, OPEN),
        "project_manager": (LISTED, LISTED, OPEN),
        "sales_manager": (OPEN, LISTED, OPEN),
        "finance": (OPEN, OPEN, OPEN),
        "management": (OPEN, OPEN, OPEN),
        "hr": (NONE, NONE, NONE),
        "wallboard": (NONE, NONE, NONE),
        "marketing": (NONE, NONE, OPEN),
    }
    assert policy.document_openers("contract") == ["sales_manager", "finance", "management"]
    assert policy.document_openers("invoice") == ["finance", "management"]
    assert [policy.document_class_label(c) for c in permissions.DOCUMENT_CLASSES] == ["合同", "发票", "其他"]
    assert policy.may_open_document("sales_manager", "contract")
    assert not policy.may_open_document("sales_manager", "invoice")


def test_unknown_class_is_closed_and_unknown_role_an_error(policy: permissions.Policy) -> None:
    assert policy.document_access("management", "payslip") is NONE
    assert policy.document_openers("payslip") == []
    assert policy.document_class_label("payslip") == "未分类"
    with pytest.raises(PolicyError) as info:
        policy.document_access("intern", "contract")
    assert info.value.issues[0].role == "intern"


def test_a_role_that_does_not_see_customers_sees_no_document(
    edited_copy: Callable[..., Path], dictionary: Dictionary
) -> None:
    """Opening rights alone are not enough: the role must see the customer (company.name)."""
    path = edited_copy(
        SHIPPED, ("      employee:        {fields: [name]}\n", "      employee:        {fields: []}\n")
    )
    narrowed = permissions.build(path, dictionary)
    assert narrowed.document_access("employee", "other") is NONE
    assert "employee" not in narrowed.document_openers("other")


def test_a_policy_without_documents_opens_nothing(tmp_path: Path, dictionary: Dictionary) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    path = tmp_path / "no_documents.yaml"
    path.write_text(text[: text.index("\ndocuments:")] + "\n", encoding="utf-8")
    bare = permissions.build(path, dictionary)
    assert {bare.document_access(r, c) for r in bare.roles for c in permissions.DOCUMENT_CLASSES} == {NONE}


BROKEN = [
    pytest.param(
        "    contract:",
        "contract:",
        "contracts:",
        ["文件类别 'contracts' 未知", "缺少文件类别 contract"],
        id="unknown-class",
    ),
    pytest.param(
        "open: [finance, management]",
        "finance",
        "accountant",
        ["角色 accountant", "未在 roles"],
        id="unknown-role-open",
    ),
    pytest.param(
        "listed: [project_manager]",
        "project_manager",
        "boss",
        ["角色 boss", "listed"],
        id="unknown-role-listed",
    ),
    pytest.param(
        "listed: [sales_manager, project_manager]",
        "project_manager",
        "finance",
        ["角色 finance", "同时出现在", "open 和 listed"],
        id="open-and-listed",
    ),
    pytest.param("open: [employee,", "employee,", "employee, employee,", ["出现了两次"], id="role-twice"),
    pytest.param("label: 合同", "label: 合同", "lable: 合同", ["lable", "只能有 label"], id="unknown-key"),
    pytest.param(
        "open: [finance, management]", "[finance, management]", "finance", ["必须是角色列表"], id="not-a-list"
    ),
]


def _load_error(path: Path, dictionary: Dictionary) -> str:
    with pytest.raises(PolicyError) as info:
        permissions.build(path, dictionary)
    return str(info.value)


@pytest.mark.parametrize(
    ("edit", "expected"), [(p.values[:3], p.values[3]) for p in BROKEN], ids=[str(p.id) for p in BROKEN]
)
def test_broken_document_rules_fail_at_load_naming_the_line(
    broken_copy: Callable[..., tuple[Path, int]],
    dictionary: Dictionary,
    edit: tuple[str, str, str],
    expected: list[str],
) -> None:
    """Each mistake fails the whole policy (no page opens) with a Chinese message at the line to fix."""
    path, line = broken_copy(SHIPPED, *edit, after="documents:")
    message = _load_error(path, dictionary)
    assert [word for word in expected if word not in message] == [], message
    assert f"{path}:{line}" in message


def test_a_missing_class_fails_at_load(tmp_path: Path, dictionary: Dictionary) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    start = text.index("    invoice:")
    end = text.index("    # 其他")
    path = tmp_path / "no_invoice.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    assert "缺少文件类别 invoice" in _load_error(path, dictionary)


@given(
    role=st.sampled_from(
        sorted(["employee", "project_manager", "sales_manager", "finance", "management", "hr", "wallboard"])
    ),
    doc_class=st.text(max_size=12),
)
def test_only_named_classes_ever_open(policy: permissions.Policy, role: str, doc_class: str) -> None:
    """Any class name but the three named is closed to every role; opening implies being among the openers."""
    access = policy.document_access(role, doc_class)
    if doc_class not in permissions.DOCUMENT_CLASSES:
        assert access is NONE
    assert (access is OPEN) == (role in policy.document_openers(doc_class))
