"""``bridge dictionary check|explain`` through ``bridge.cli_dictionary`` (exit codes and what a person reads)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import cli_dictionary
from sandbox.common.world import World

ROOT = Path(__file__).resolve().parents[2]
DICTIONARY = ROOT / "include" / "dictionary.yaml"
POLICY = ROOT / "include" / "permissions.yaml"


def run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_dictionary.register(sub)
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = args.handler(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_check_shipped_files() -> None:
    code, out, err = run("dictionary", "check")
    assert code == 0, err
    assert "数据字典 OK" in out
    assert "权限策略 OK" in out
    assert "2026." in out
    assert "销售主管(sales_manager)" in out


@pytest.mark.parametrize(
    ("option", "source", "edit", "where", "what"),
    [
        (
            "--file",
            DICTIONARY,
            ("stage:", "value_map: deal_stage", "value_map: deal_stages"),
            " 实体 deal 字段 stage",
            "deal_stages",
        ),
        (
            "--permissions",
            POLICY,
            ("employee:        {fields: [name]}", "[name]", "[name, secret]"),
            "",
            "字段 secret",
        ),
    ],
    ids=["dictionary", "policy"],
)
def test_check_broken_file_names_the_line(
    broken_copy: Callable[..., tuple[Path, int]],
    option: str,
    source: Path,
    edit: tuple[str, str, str],
    where: str,
    what: str,
) -> None:
    path, line = broken_copy(source, *edit)
    code, out, err = run("dictionary", "check", option, str(path))
    assert code == 1
    assert f"{path}:{line}{where}" in err
    assert what in err
    assert out == ""


def test_check_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("dictionary", "check", "--file", str(tmp_path / "none.yaml"))
    assert code == 2
    assert "不存在" in err


def _deal_json(tmp_path: Path, **overrides: str) -> Path:
    world = World(seed=3, companies=20, deals=50, dirty_share=0.0, now_ms=1_764_124_800_000)
    obj = world.deal(0)
    props = {k: v for k, v in obj.properties.items() if not k.startswith("_")}
    props.update(overrides)
    payload: dict[str, Any] = {
        "id": obj.id,
        "properties": props,
        "archived": False,
        "associations": {
            "companies": {"results": [{"id": obj.associations["companies"][0], "type": "deal_to_company"}]}
        },
    }
    path = tmp_path / "deal.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return path


def test_explain_deal_every_role(tmp_path: Path) -> None:
    path = _deal_json(tmp_path, amount="12,345.5", dealstage="closedwon")
    code, out, err = run("dictionary", "explain", "deal", str(path))
    assert code == 0, err
    assert "映射问题: 无" in out
    assert "contract_amount      合同金额: 12345.50" in out
    assert "stage                商机阶段: won（赢单）" in out
    employee = out.split("角色 employee（普通员工）看到:")[1].split("角色 project_manager")[0]
    assert "project_no" in employee
    assert "12345.50" not in employee
    assert "不可见: crm_id, deal_name, stage, contract_amount" in employee
    manager = out.split("角色 sales_manager（销售主管）看到:")[1].split("角色 finance")[0]
    assert "12345.50" in manager


def test_explain_json_and_role(tmp_path: Path) -> None:
    path = _deal_json(tmp_path)
    code, out, _ = run("dictionary", "explain", "deal", str(path), "--role", "employee", "--json")
    assert code == 0
    document = json.loads(out)
    assert set(document["views"]) == {"employee"}
    assert document["views"]["employee"] == {"project_no": None}
    assert document["record"]["crm_id"] == "50000000001"
    assert len(document["content_hash"]) == 64


def test_explain_dirty_record_exits_1_with_the_reason(tmp_path: Path) -> None:
    path = _deal_json(tmp_path, dealstage="legacy_stage_7")
    code, out, _ = run("dictionary", "explain", "deal", str(path), "--role", "sales_manager")
    assert code == 1
    assert "[unmapped_value] stage" in out
    assert "legacy_stage_7" in out


def test_explain_contact_masks_and_canonical_input(tmp_path: Path) -> None:
    path = tmp_path / "contact.json"
    path.write_text(
        json.dumps({"crm_id": "9", "mobile": "13812345678", "email": "a.b@example.com"}), encoding="utf-8"
    )
    code, out, _ = run("dictionary", "explain", "contact", str(path), "--role", "project_manager", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["source"] == "canonical"
    view = {k: v for k, v in document["views"]["project_manager"].items() if v is not None}
    assert view == {"crm_id": "9", "mobile": "138****5678", "email": "a***@example.com"}
    assert "owner_id" not in document["views"]["project_manager"]  # denied, not merely empty


def test_explain_oa_instance(tmp_path: Path) -> None:
    world = World(seed=5, companies=20, deals=20, oa_instances=40, dirty_share=0.0, now_ms=1_764_124_800_000)
    inst = next(i for i in world.iter_oa_instances() if i.approval == "expense_claim")
    payload = {
        "instance_code": inst.instance_code,
        "status": inst.status,
        "user_id": inst.user_id,
        "start_time": str(inst.start_ms),
        "end_time": str(inst.end_ms),
        "serial_number": inst.serial_number,
        "form": json.dumps(inst.form, ensure_ascii=False),
    }
    path = tmp_path / "inst.json"
    envelope = {"code": 0, "msg": "success", "data": payload}  # as saved from the API response
    path.write_text(json.dumps(envelope, ensure_ascii=False), encoding="utf-8")
    code, out, _ = run("dictionary", "explain", "expense_claim", str(path), "--json")
    assert code == 0
    document = json.loads(out)
    assert document["source"] == "oa"
    assert document["record"]["instance_code"] == inst.instance_code
    assert document["views"]["employee"] == {"project_no": None}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "customer", "{record}"], "实体 'customer' 不在数据字典中"),
        (["explain", "deal", "{record}", "--role", "intern"], "角色 'intern' 未定义"),
        (["explain", "deal", "{missing}"], "记录文件不存在"),
        (["explain", "deal", "{bad}"], "无法读取"),
        (["explain", "deal", "{record}", "--system", "oa"], "不能按 oa 记录解析"),
    ],
)
def test_explain_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    record = _deal_json(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    filled = [a.format(record=record, missing=tmp_path / "missing.json", bad=bad) for a in argv]
    code, _, err = run("dictionary", *filled)
    assert code == 2
    assert message in err
