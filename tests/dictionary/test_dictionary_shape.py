"""The shape models of dictionary.yaml nodes: pydantic errors told in the loader's words, byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.dictionary import DictionaryError, build
from bridge.dictionary.shape import FieldSpec, ValueSpec, Where, WidgetSpec, parse
from bridge.dictionary.yamlio import LineDict

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "include" / "dictionary.yaml"


def node(data: dict[str, object], line: int = 10) -> LineDict:
    result = LineDict(data)
    result.line = line
    result.lines = {key: line + i + 1 for i, key in enumerate(data)}
    return result


def test_field_shape_problems_are_told_with_line_entity_and_field() -> None:
    body = node({"label": ["x"], "type": "string", "requried": True, "unique": "yes", "owner": ""})
    spec, complaints = parse(FieldSpec, body, Where("字段 city", "company", "city"))
    messages = {(c.line, c.message, c.entity, c.field) for c in complaints}
    assert messages == {
        (11, "字段 city 的 label 必须是文本，现在是 list。", "company", "city"),
        (
            13,
            "字段 city 中有未知的键 'requried'；允许的键: association、crm、derive、format、label、oa、owner、required、"
            "sensitive、system_of_record、type、unique …（是否拼写错误？）",
            "company",
            "city",
        ),
        (14, "unique 必须是 true 或 false，现在是 'yes'。", "company", "city"),
        (10, "字段 city 缺少 owner；请补上。", "company", "city"),
        (10, "字段 city 缺少 system_of_record；请补上。", "company", "city"),
    }
    # What is usable is kept, so the loader can go on checking references.
    assert (spec.label, spec.type, spec.owner, spec.unique, spec.required) == (
        None,
        "string",
        None,
        False,
        False,
    )


def test_numbers_are_read_as_text_and_from_keys_are_derivations() -> None:
    spec, complaints = parse(
        ValueSpec, node({"canonical": 7, "label": "七", "from_deal_stage": ["won"]}), Where("值映射 m")
    )
    assert complaints == []
    assert (spec.canonical, spec.derived_from) == ("7", {"deal_stage": ["won"]})


def test_a_widget_names_itself_by_its_form_until_its_id_is_known() -> None:
    body = node({"type": "input", "name": "名称", "required": "no"})
    _, complaints = parse(WidgetSpec, body, Where("表单 f 的控件 None", what_of={"id": "表单 f 的控件"}))
    assert {c.message for c in complaints} == {
        "表单 f 的控件 缺少 id；请补上。",
        "表单 f 的控件 None: required 必须是 true 或 false。",
    }


def test_shape_and_reference_problems_are_reported_together(edited_copy: Callable[..., Path]) -> None:
    path = edited_copy(
        SHIPPED,
        ("value_map: deal_stage, crm: dealstage", "value_map: deal_stages, crm: dealstage"),
        ("{label: 城市,", "{label: 城市, unique: maybe,"),
        name="two.yaml",
    )
    with pytest.raises(DictionaryError) as info:
        build(path)
    messages = [issue.message for issue in info.value.issues]
    assert "unique 必须是 true 或 false，现在是 'maybe'。" in messages
    assert any("deal_stages" in m and "不存在" in m for m in messages)


def test_policy_nodes_refuse_unknown_keys_in_the_policy_words(edited_copy: Callable[..., Path]) -> None:
    from bridge import permissions

    path = edited_copy(
        ROOT / "include" / "permissions.yaml",
        ("employee:        {label: 普通员工}", "employee:        {label: 普通员工, lable: 员工}"),
        name="policy.yaml",
    )
    with pytest.raises(permissions.PolicyError) as info:
        permissions.build(path, build(SHIPPED))
    [issue] = info.value.issues
    assert (issue.role, issue.message) == ("employee", "未知的键 'lable'；角色下只能有 label（中文名称）。")
    assert f"{path}:{issue.line} 角色 employee: " in str(info.value)
