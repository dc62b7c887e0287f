"""OA simulator conformance: answers validate against Feishu's OpenAPI files; refusals match the vendor's.

The spec files are read from ``BRIDGE_SPECS_DIR`` (default ``<repo>/sandbox/specs``). Feishu documents
business errors as HTTP 400 with ``{code, msg}``; the spec describes only the 200 answer, so refusals are
checked for the vendor's status and code and for the envelope's types.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.common.world import APPROVAL_CODES
from sandbox.launcher import SimProcess
from sandbox.oa.testing import OaClient, SpecValidator, running_oa, sample_form, specs_dir

SPEC = SpecValidator()
pytestmark = pytest.mark.skipif(not SPEC.available, reason=f"Feishu spec files not found in {specs_dir()}/feishu "
                                                           "(set BRIDGE_SPECS_DIR)")

EXPENSE = APPROVAL_CODES["expense_claim"]
INSTANCES = "/open-apis/approval/v4/instances"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimProcess, OaClient]]:
    with running_oa(tmp_path_factory.mktemp("oa_conf"), "--rate-limits", "off", "--seed", "3") as pair:
        yield pair


@pytest.fixture(scope="module")
def oa(sim: tuple[SimProcess, OaClient]) -> OaClient:
    return sim[1]


@pytest.fixture(scope="module")
def user(oa: OaClient) -> dict[str, Any]:
    users = oa.admin("GET", "/users")["users"]
    return next(u for u in users if u["role"] == "employee")


def conforms(method: str, spec_path: str, resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["code"] == 0
    problems = SPEC.errors(method, spec_path, body)
    assert problems == [], f"{method} {spec_path}: {problems}"
    return body


def refused(resp: requests.Response, status: int, code: int) -> None:
    body = resp.json()
    assert (resp.status_code, body["code"]) == (status, code), body
    assert isinstance(body["msg"], str)
    assert body["msg"]
    assert set(body) <= {"code", "msg", "data", "error"}


def test_token_answers_conform(oa: OaClient) -> None:
    for path in ("/open-apis/auth/v3/tenant_access_token/internal", "/open-apis/auth/v3/app_access_token/internal"):
        resp = oa.request("POST", path, token=None, json={"app_id": oa.app_id, "app_secret": oa.app_secret})
        body = conforms("POST", path, resp)
        assert body["msg"] == "ok"
        assert isinstance(body["expire"], int)


@pytest.mark.parametrize("form", list(APPROVAL_CODES))
def test_definitions_conform(oa: OaClient, form: str) -> None:
    resp = oa.request("GET", f"/open-apis/approval/v4/approvals/{APPROVAL_CODES[form]}")
    conforms("GET", "/open-apis/approval/v4/approvals/{approval_code}", resp)


def test_create_list_get_query_cancel_conform(oa: OaClient, user: dict[str, Any]) -> None:
    created = conforms("POST", INSTANCES, oa.create(EXPENSE, user["user_id"], sample_form("expense_claim")))
    code = created["data"]["instance_code"]
    now = int(time.time() * 1000)
    listed = conforms("GET", INSTANCES, oa.request("GET", INSTANCES, params={
        "approval_code": EXPENSE, "start_time": now - 3_600_000, "end_time": now + 1000, "page_size": 1}))
    assert code in listed["data"]["instance_code_list"]
    conforms("GET", "/open-apis/approval/v4/instances/{instance_id}", oa.request("GET", f"{INSTANCES}/{code}"))
    queried = conforms("POST", f"{INSTANCES}/query",
                       oa.request("POST", f"{INSTANCES}/query", params={"page_size": 5}, json={"approval_code": EXPENSE}))
    assert queried["data"]["has_more"] is True
    conforms("POST", f"{INSTANCES}/cancel", oa.request("POST", f"{INSTANCES}/cancel", json={
        "approval_code": EXPENSE, "instance_code": code, "user_id": user["open_id"]}))
    conforms("POST", "/open-apis/approval/v4/approvals/{approval_code}/subscribe",
             oa.request("POST", f"/open-apis/approval/v4/approvals/{EXPENSE}/subscribe"))


def test_task_answers_conform(oa: OaClient, user: dict[str, Any]) -> None:
    code = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim")).json()["data"]["instance_code"]
    task = oa.call("GET", f"{INSTANCES}/{code}")["task_list"][0]
    body = {"approval_code": EXPENSE, "instance_code": code, "user_id": task["open_id"], "task_id": task["id"]}
    conforms("POST", "/open-apis/approval/v4/tasks/reject", oa.request("POST", "/open-apis/approval/v4/tasks/reject", json=body))
    body = {**body, "user_id": user["open_id"], "form": sample_form("expense_claim")}
    conforms("POST", "/open-apis/approval/v4/tasks/resubmit",
             oa.request("POST", "/open-apis/approval/v4/tasks/resubmit", json=body))
    task = oa.call("GET", f"{INSTANCES}/{code}")["task_list"][-1]
    body = {"approval_code": EXPENSE, "instance_code": code, "user_id": task["open_id"], "task_id": task["id"]}
    conforms("POST", "/open-apis/approval/v4/tasks/approve", oa.request("POST", "/open-apis/approval/v4/tasks/approve", json=body))


@pytest.mark.parametrize("status", ["PENDING", "APPROVED", "REJECTED", "CANCELED", "DELETED"])
def test_seeded_instances_of_every_status_conform(oa: OaClient, status: str) -> None:
    page = oa.admin("GET", "/instances", params={"status": status, "limit": 5})
    assert page["items"], f"the seeded world has no {status} instance"
    for item in page["items"]:
        resp = oa.request("GET", f"{INSTANCES}/{item['instance_code']}")
        body = conforms("GET", "/open-apis/approval/v4/instances/{instance_id}", resp)
        assert body["data"]["status"] == status


def test_query_of_every_status_conforms(oa: OaClient) -> None:
    for status in ("PENDING", "RECALL", "REJECT", "DELETED", "APPROVED", "ALL"):
        resp = oa.request("POST", f"{INSTANCES}/query", params={"page_size": 200},
                          json={"approval_code": EXPENSE, "instance_status": status})
        conforms("POST", f"{INSTANCES}/query", resp)


def test_refusals_match_the_vendor(oa: OaClient, user: dict[str, Any]) -> None:
    now = int(time.time() * 1000)
    window = {"approval_code": EXPENSE, "start_time": now - 3_600_000, "end_time": now}
    refused(oa.request("GET", INSTANCES, params={**window, "page_size": 500}), 400, 99992402)
    refused(oa.request("POST", f"{INSTANCES}/query", params={"page_size": 1}, json={"approval_code": EXPENSE}),
            400, 99992402)
    refused(oa.request("GET", INSTANCES, params={**window, "approval_code": "NO-SUCH-CODE"}), 400, 1390002)
    refused(oa.request("GET", "/open-apis/approval/v4/approvals/NO-SUCH-CODE"), 400, 1390002)
    refused(oa.create("NO-SUCH-CODE", user["user_id"], sample_form("expense_claim")), 400, 1390002)
    refused(oa.request("GET", f"{INSTANCES}/NO-SUCH-INSTANCE"), 400, 1390003)
    refused(oa.create(EXPENSE, user["user_id"], "{not json"), 400, 1390001)
    refused(oa.request("GET", INSTANCES, params=window, token="Bearer t-bogus"), 400, 99991663)
    refused(oa.request("GET", INSTANCES, params=window, token=None), 400, 99991661)
    oa.create(EXPENSE, user["user_id"], sample_form("expense_claim"), uuid="conf-uuid")
    refused(oa.create(EXPENSE, user["user_id"], sample_form("expense_claim"), uuid="conf-uuid"), 400, 60012)
    refused(oa.request("GET", "/open-apis/approval/v4/no-such-route"), 404, 99991201)


def test_the_validator_catches_answers_that_break_the_spec() -> None:
    """The conformance checks above can fail: a wrong status, type or missing field is reported."""
    wrong = {"code": 0, "msg": "success", "data": {"status": "WAITING", "start_time": 1}}
    problems = SPEC.errors("GET", "/open-apis/approval/v4/instances/{instance_id}", wrong)
    assert any("WAITING" in p for p in problems)
    assert any("start_time" in p for p in problems)
    assert any("serial_number" in p for p in problems)
    listing = {"code": 0, "msg": "success", "data": {"instance_code_list": [], "has_more": False}}
    assert SPEC.errors("GET", INSTANCES, listing) == ["data: 'page_token' is a required property"]
