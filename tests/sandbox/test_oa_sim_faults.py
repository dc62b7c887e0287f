"""OA simulator fault injection: every kind reaches a plain HTTP client as intended."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from sandbox.common.world import APPROVAL_CODES
from sandbox.launcher import SimProcess
from sandbox.oa.testing import OaClient, sample_form, sample_widgets

EXPENSE = APPROVAL_CODES["expense_claim"]
INSTANCES = "/open-apis/approval/v4/instances"
APPROVAL = f"/open-apis/approval/v4/approvals/{EXPENSE}"
BROKEN = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)


@pytest.fixture(autouse=True)
def _token_before_faults(oa: OaClient) -> None:
    """Fetch the token before a test sets its faults, which would hit the token call too."""
    oa.token  # noqa: B018


@pytest.fixture(scope="module")
def user(oa_sim: tuple[SimProcess, OaClient]) -> dict[str, Any]:
    users = oa_sim[1].admin("GET", "/users")["users"]
    return next(u for u in users if u["role"] == "employee")


def fault(oa: OaClient, **rule: Any) -> None:
    oa.admin("POST", "/faults", rule)


def by_uuid(oa: OaClient, uuid: str) -> requests.Response:
    return oa.request("GET", f"{INSTANCES}/{uuid}")


def test_latency_delays_the_answer(oa: OaClient) -> None:
    fault(oa, kind="latency", path="/approvals/", latency_ms=700, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        oa.request("GET", APPROVAL, timeout=0.2)
    started = time.perf_counter()
    assert oa.request("GET", APPROVAL).status_code == 200  # count=1: the next one is fast
    assert time.perf_counter() - started < 0.5


def test_error_answers_the_status_with_a_feishu_body_and_writes_nothing(oa: OaClient, user: dict[str, Any]) -> None:
    fault(oa, kind="error", path="^/open-apis/approval/v4/instances$", method="POST", status=503)
    resp = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim"), uuid="err-1")
    assert resp.status_code == 503
    body = resp.json()
    assert isinstance(body["code"], int)
    assert body["code"] != 0
    assert body["msg"]
    assert resp.headers["x-tt-logid"]
    assert by_uuid(oa, "err-1").json()["code"] == 1390003


def test_rate_limit_storm_answers_429_with_headers(oa: OaClient) -> None:
    fault(oa, kind="rate_limit", path="/approvals/", retry_after=2, count=3)
    statuses = []
    for _ in range(4):
        resp = oa.request("GET", APPROVAL)
        statuses.append(resp.status_code)
    assert statuses == [429, 429, 429, 200]
    fault(oa, kind="rate_limit", path="/approvals/", retry_after=2, count=1)
    resp = oa.request("GET", APPROVAL)
    assert resp.json()["code"] == 99991400
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["x-ogw-ratelimit-limit"]
    assert resp.headers["x-ogw-ratelimit-reset"]


def test_drop_before_breaks_the_connection_and_nothing_is_written(oa: OaClient, user: dict[str, Any]) -> None:
    fault(oa, kind="drop_before", path="^/open-apis/approval/v4/instances$", method="POST", count=1)
    with pytest.raises(BROKEN):
        oa.create(EXPENSE, user["user_id"], sample_form("expense_claim"), uuid="drop-before")
    assert by_uuid(oa, "drop-before").json()["code"] == 1390003


def test_drop_after_commits_then_breaks_the_connection(oa: OaClient, user: dict[str, Any]) -> None:
    """The ambiguous write: the instance exists although the client saw a broken connection."""
    fault(oa, kind="drop_after", path="^/open-apis/approval/v4/instances$", method="POST", count=1)
    form = sample_form("expense_claim")
    with pytest.raises(BROKEN):
        oa.create(EXPENSE, user["user_id"], form, uuid="ambiguous-1")
    found = by_uuid(oa, "ambiguous-1").json()
    assert found["code"] == 0
    assert found["data"]["status"] == "PENDING"
    # A blind retry is refused (Feishu: a uuid creates one instance) and creates no duplicate.
    assert oa.create(EXPENSE, user["user_id"], form, uuid="ambiguous-1").json()["code"] == 60012
    assert oa.admin("GET", "/instances")["total"] == 1


def test_timeout_commits_then_answers_too_late(oa: OaClient, user: dict[str, Any]) -> None:
    fault(oa, kind="timeout", path="^/open-apis/approval/v4/instances$", method="POST", latency_ms=800, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        oa.request("POST", INSTANCES, json={"approval_code": EXPENSE, "user_id": user["user_id"],
                                            "form": sample_form("expense_claim"), "uuid": "late-1"}, timeout=0.3)
    assert by_uuid(oa, "late-1").json()["code"] == 0


def test_html_page_and_malformed_json_answer_200(oa: OaClient) -> None:
    fault(oa, kind="html_200", path="/approvals/", count=1)
    resp = oa.request("GET", APPROVAL)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError, match=r".+"):
        resp.json()
    fault(oa, kind="malformed_json", path="/approvals/", count=1)
    resp = oa.request("GET", APPROVAL)
    assert resp.status_code == 200
    with pytest.raises(ValueError, match=r".+"):
        resp.json()
    assert oa.request("GET", APPROVAL).json()["code"] == 0


def test_big_body(oa: OaClient) -> None:
    fault(oa, kind="big_body", path="/approvals/", size_bytes=300_000, count=1)
    resp = oa.request("GET", APPROVAL)
    assert resp.status_code == 200
    assert len(resp.content) == 300_000


def _window_codes(oa: OaClient, user: dict[str, Any], n: int) -> tuple[list[str], dict[str, Any]]:
    base = int(time.time() * 1000) - 3_600_000
    made = [oa.admin("POST", "/act/submit", {"approval": "expense_claim", "user_id": user["user_id"],
                                            "form": sample_widgets("expense_claim"), "start_time": base + i})["instance_code"]
            for i in range(n)]
    return made, {"approval_code": EXPENSE, "start_time": base, "end_time": base + 1000, "page_size": 2}


def _follow(oa: OaClient, params: dict[str, Any], max_pages: int) -> list[list[str]]:
    pages, token = [], ""
    for _ in range(max_pages):
        data = oa.call("GET", INSTANCES, params={**params, **({"page_token": token} if token else {})})
        pages.append(data["instance_code_list"])
        if not data["has_more"]:
            break
        token = data["page_token"]
    return pages


def test_repeat_page_serves_a_page_twice(oa: OaClient, user: dict[str, Any]) -> None:
    made, params = _window_codes(oa, user, 5)
    fault(oa, kind="repeat_page", path="^/open-apis/approval/v4/instances$", count=1)
    pages = _follow(oa, params, 10)
    assert pages[0] == pages[1] == made[:2]  # the client reads the first page twice ...
    assert [c for p in pages[1:] for c in p] == made  # ... then the listing goes on to the end
    assert oa.admin("GET", "/stats")["faults_fired"]["repeat_page"] == 1


def test_loop_cursor_sends_the_client_back_to_the_first_page(oa: OaClient, user: dict[str, Any]) -> None:
    made, params = _window_codes(oa, user, 5)
    fault(oa, kind="loop_cursor", path="^/open-apis/approval/v4/instances$")
    pages = _follow(oa, params, 6)
    assert len(pages) == 6  # never ends by itself
    flat = [c for p in pages for c in p]
    assert set(flat) <= set(made)
    assert len(flat) > len(set(flat))


def test_loop_cursor_on_query(oa: OaClient, user: dict[str, Any]) -> None:
    _window_codes(oa, user, 6)
    fault(oa, kind="loop_cursor", path="/instances/query", count=1)
    data = oa.call("POST", f"{INSTANCES}/query", params={"page_size": 5}, json={"approval_code": EXPENSE})
    back = oa.call("POST", f"{INSTANCES}/query", params={"page_size": 5, "page_token": data["page_token"]},
                   json={"approval_code": EXPENSE})
    assert [i["instance"]["code"] for i in back["instance_list"]] == [i["instance"]["code"] for i in data["instance_list"]]


def test_faults_are_deterministic_with_a_seed(oa: OaClient) -> None:
    def pattern() -> list[int]:
        oa.admin("PUT", "/faults", {"rules": [{"kind": "error", "path": "/approvals/", "rate": 0.5, "seed": 3,
                                              "status": 500}]})
        return [oa.request("GET", APPROVAL).status_code for _ in range(16)]

    first, second = pattern(), pattern()
    assert first == second
    assert 500 in first
    assert 200 in first
    rules = oa.admin("GET", "/faults")["rules"]
    assert rules[0]["seen"] == 16
    assert rules[0]["fired"] == first.count(500)
    oa.admin("DELETE", "/faults")
    assert oa.request("GET", APPROVAL).status_code == 200


def test_admin_api_is_never_faulted(oa: OaClient) -> None:
    fault(oa, kind="error", path=".*", status=500)
    assert oa.admin("GET", "/health")["status"] == "ok"
    assert oa.request("GET", APPROVAL).status_code == 500
