"""OA simulator: comments on approval instances (评论), answers validated against Feishu's ``approval.yaml``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.common.world import APPROVAL_CODES
from sandbox.oa.testing import OaClient, SpecValidator, sample_form

SPEC = SpecValidator()
COMMENTS = "/open-apis/approval/v4/instances/{instance_id}/comments"
PROJECT = APPROVAL_CODES["project_initiation"]


def _user(oa: OaClient, role: str = "employee") -> dict[str, Any]:
    return next(u for u in oa.admin("GET", "/users")["users"] if u["role"] == role)


def _instance(oa: OaClient, user: dict[str, Any]) -> str:
    created = oa.create(PROJECT, user["user_id"], sample_form("project_initiation"))
    assert created.status_code == 200, created.text
    return str(created.json()["data"]["instance_code"])


def _post(oa: OaClient, code: str, user_id: str, text: str, **params: str) -> Any:
    content = json.dumps({"text": text, "files": []}, ensure_ascii=False)
    return oa.request("POST", COMMENTS.format(instance_id=code), json={"content": content},
                      params={"user_id_type": "user_id", "user_id": user_id, **params})


def _valid(method: str, resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["code"] == 0
    if SPEC.available:
        assert SPEC.errors(method, COMMENTS, body) == []
    return body


def test_a_comment_is_stored_listed_and_shown_in_the_instance_detail(oa: OaClient) -> None:
    user, bot = _user(oa), _user(oa, "finance")
    code = _instance(oa, user)
    oa.admin("POST", "/act/withdraw", {"instance_code": code})
    first = _valid("POST", _post(oa, code, bot["user_id"], "CRM 中的商机已删除（归档），由集成机器人撤回"))
    second = _valid("POST", _post(oa, code, user["user_id"], "收到"))
    assert first["data"]["comment_id"] != second["data"]["comment_id"]
    listed = _valid("GET", oa.request("GET", COMMENTS.format(instance_id=code),
                                      params={"user_id_type": "user_id", "user_id": user["user_id"]}))
    items = listed["data"]["comments"]
    assert [i["id"] for i in items] == [first["data"]["comment_id"], second["data"]["comment_id"]]
    assert json.loads(items[0]["content"])["text"] == "CRM 中的商机已删除（归档），由集成机器人撤回"
    assert items[0]["commentator"] == bot["user_id"]
    assert items[0]["is_delete"] == 0
    detail = oa.call("GET", f"/open-apis/approval/v4/instances/{code}", params={"user_id_type": "user_id"})
    shown = [(c["user_id"], c["comment"]) for c in detail["comment_list"]]
    assert shown == [(bot["user_id"], "CRM 中的商机已删除（归档），由集成机器人撤回"), (user["user_id"], "收到")]
    assert detail["status"] == "CANCELED", "a comment changes no status"


def test_comment_list_pages_with_a_token_only_while_more_remain(oa: OaClient) -> None:
    user = _user(oa)
    code = _instance(oa, user)
    for n in range(3):
        _valid("POST", _post(oa, code, user["user_id"], f"第{n}条"))
    seen: list[str] = []
    token = ""
    for _ in range(3):
        params = {"user_id_type": "user_id", "user_id": user["user_id"], "page_size": "2"}
        if token:
            params["page_token"] = token
        data = _valid("GET", oa.request("GET", COMMENTS.format(instance_id=code), params=params))["data"]
        seen += [json.loads(c["content"])["text"] for c in data["comments"]]
        if not data["has_more"]:
            assert "page_token" not in data
            break
        token = data["page_token"]
    assert seen == ["第0条", "第1条", "第2条"]


@pytest.mark.parametrize(("case", "status", "code"), [
    ("unknown_instance", 400, 1390003),
    ("no_user_id", 400, 99992402),
    ("unknown_user", 400, 1390001),
    ("empty_content", 400, 1390001),
    ("no_token", 400, 99991661),
])
def test_comment_refusals_are_feishus(oa: OaClient, case: str, status: int, code: int) -> None:
    user = _user(oa)
    instance = _instance(oa, user)
    path = COMMENTS.format(instance_id="no-such-instance" if case == "unknown_instance" else instance)
    params = {"user_id_type": "user_id", "user_id": "nobody" if case == "unknown_user" else user["user_id"]}
    if case == "no_user_id":
        params.pop("user_id")
    content = "" if case == "empty_content" else json.dumps({"text": "x"})
    resp = oa.request("POST", path, params=params, json={"content": content}, token=case != "no_token")
    assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    listed = oa.call("GET", COMMENTS.format(instance_id=instance),
                     params={"user_id_type": "user_id", "user_id": user["user_id"]})
    assert listed["comments"] == [], "a refused comment stores nothing"


def test_the_deal_void_notice_definition_comes_from_the_dictionary(oa: OaClient) -> None:
    definition = oa.call("GET", f"/open-apis/approval/v4/approvals/{APPROVAL_CODES['deal_void_notice']}")
    assert definition["approval_name"] == "商机作废通知"
    widgets = {w["id"]: w["name"] for w in json.loads(definition["form"])}
    assert widgets["void_reason"] == "作废原因"
    assert widgets["project_instance"] == "原立项申请编号"
    assert widgets["voided_at"] == "作废时间"
