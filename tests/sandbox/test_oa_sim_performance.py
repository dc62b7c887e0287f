"""Feishu 绩效 (Performance) endpoints of the OA simulator over real HTTP: answers validated against
``sandbox/specs/feishu/performance.yaml``, filters, the tenant token, refusals with Feishu's codes and
results that are a pure function of the seeded people."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from sandbox.launcher import SimProcess
from sandbox.oa.performance import RATINGS, semesters
from sandbox.oa.testing import OaClient, _load_spec, _resolve, specs_dir

OA_SIM_ARGS = ("--seed", "5")
SPEC_FILE = specs_dir() / "feishu" / "performance.yaml"
pytestmark = pytest.mark.skipif(
    not SPEC_FILE.is_file(), reason=f"{SPEC_FILE} not found (set BRIDGE_SPECS_DIR)"
)
SEMESTERS = "/open-apis/performance/v1/semesters"
ACTIVITIES = "/open-apis/performance/v2/activity/query"
REVIEWS = "/open-apis/performance/v1/review_datas/query"


def conforms(method: str, path: str, resp: requests.Response) -> dict[str, Any]:
    """The 200 answer of ``method path`` validated against the spec's response schema."""
    from openapi_schema_validator import OAS30Validator

    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["code"] == 0
    spec = _load_spec("performance.yaml")
    schema = spec["paths"][path][method.lower()]["responses"]["200"]["content"]["application/json"]["schema"]
    resolved = _resolve(schema, spec.get("components", {}).get("schemas", {}))
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in OAS30Validator(resolved).iter_errors(body)
    ]
    assert problems == [], problems[:5]
    return body


@pytest.fixture
def client(oa_sim: tuple[SimProcess, OaClient]) -> OaClient:
    client = oa_sim[1]
    client.forget_token()
    return client


def test_semesters_listed_and_filtered(client: OaClient) -> None:
    every = conforms("GET", SEMESTERS, client.request("GET", SEMESTERS))["data"]["items"]
    assert [s["id"] for s in every] == [s.id for s in semesters()]
    assert every[0]["name"]["zh-CN"] == "2025年上半年"
    only = client.call("GET", SEMESTERS, params={"year": 2026, "type": "H2"})["items"]
    assert [s["name"]["zh-CN"] for s in only] == ["2026年下半年"]
    window = client.call(
        "GET", SEMESTERS, params={"start_time": every[1]["start_time"], "end_time": every[2]["end_time"]}
    )["items"]
    assert [s["id"] for s in window] == [every[1]["id"], every[2]["id"]]


def test_activities_by_semester_or_id(client: OaClient) -> None:
    first = semesters()[0]
    body = conforms("POST", ACTIVITIES, client.request("POST", ACTIVITIES, json={"semester_ids": [first.id]}))
    assert [a["id"] for a in body["data"]["activities"]] == [first.activity_id]
    # activity_ids win over semester_ids (performance.yaml)
    both = client.call(
        "POST", ACTIVITIES, json={"semester_ids": [first.id], "activity_ids": [semesters()[1].activity_id]}
    )
    assert [a["semester_id"] for a in both["activities"]] == [semesters()[1].id]


def test_review_results_per_person_and_period(client: OaClient) -> None:
    users = client.admin("GET", "/users")["users"]
    sales = next(u for u in users if u["role"] == "employee" and u["department_id"].startswith("od-sales"))
    manager = next(
        u for u in users if u["role"] == "sales_manager" and u["department_id"] == sales["department_id"]
    )
    body = conforms(
        "POST",
        REVIEWS,
        client.request(
            "POST",
            REVIEWS,
            params={"user_id_type": "user_id"},
            json={"reviewee_user_id_list": [sales["user_id"]], "semester_id_list": [semesters()[0].id]},
        ),
    )["data"]
    assert [d["user_id"]["user_id"] for d in body["datas"]] == [sales["user_id"]]
    stages = body["datas"][0]["stages"]
    assert [s["stage_type"] for s in stages] == ["leader_review", "communication_and_open_result"]
    result = stages[0]["data"][0]
    assert result["reviewer_user_id"]["user_id"] == manager["user_id"]
    option = {o[0]: o for o in RATINGS}[result["option_id"]]
    assert (result["text"], result["score"]) == (option[1], option[3])
    again = client.call(
        "POST",
        REVIEWS,
        params={"user_id_type": "user_id"},
        json={"reviewee_user_id_list": [sales["user_id"]], "semester_id_list": [semesters()[0].id]},
    )
    assert again == body  # a pure function of the seeded people


def test_only_finished_periods_are_reported(client: OaClient) -> None:
    every = client.call("POST", REVIEWS, json={})
    reported = {d["semester_id"] for d in every["datas"]}
    now_ms = int(time.time() * 1000)
    assert reported == {s.id for s in semesters() if s.end_ms < now_ms}
    rated_users = {d["user_id"]["open_id"] for d in every["datas"]}
    roles = {u["open_id"]: u["role"] for u in client.admin("GET", "/users")["users"]}
    assert {roles[u] for u in rated_users} <= {"employee", "sales_manager", "project_manager"}
    leader_only = client.call("POST", REVIEWS, json={"stage_types": ["leader_review"]})
    assert {s["stage_type"] for d in leader_only["datas"] for s in d["stages"]} == {"leader_review"}


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({"start_time": "2", "end_time": "1"}, {}),
        ({"semester_id_list": "not-a-list"}, {}),
        ({}, {"user_id_type": "email"}),
    ],
)
def test_bad_requests_refused_with_1580102(
    client: OaClient, body: dict[str, Any], params: dict[str, str]
) -> None:
    resp = client.request("POST", REVIEWS, json=body, params=params)
    assert (resp.status_code, resp.json()["code"]) == (400, 1580102)
    assert resp.json()["msg"].startswith("param is invalid")


def test_tenant_token_required(client: OaClient) -> None:
    reviewees = "/open-apis/performance/v2/reviewees/query"
    for method, path in (("GET", SEMESTERS), ("POST", ACTIVITIES), ("POST", REVIEWS), ("POST", reviewees)):
        missing = client.request(method, path, token=None, json={})
        assert (missing.status_code, missing.json()["code"]) == (400, 99991661)
        wrong = client.request(method, path, token="Bearer t-nope", json={})
        assert (wrong.status_code, wrong.json()["code"]) == (400, 99991663)


def test_reviewees_of_a_period_paged(client: OaClient) -> None:
    path = "/open-apis/performance/v2/reviewees/query"
    period = semesters()[1]
    seen: list[str] = []
    token = ""
    while True:
        params = {"page_size": 4, **({"page_token": token} if token else {})}
        body = conforms(
            "POST", path, client.request("POST", path, params=params, json={"semester_id": period.id})
        )
        data = body["data"]
        seen += [r["reviewee_user_id"]["open_id"] for r in data["reviewees"]]
        assert all(r["activity_ids"] == [period.activity_id] for r in data["reviewees"])
        if not data["has_more"]:
            assert "page_token" not in data
            break
        token = data["page_token"]
    roles = {u["open_id"]: u["role"] for u in client.admin("GET", "/users")["users"]}
    rated = sorted(o for o, r in roles.items() if r in ("employee", "sales_manager", "project_manager"))
    assert sorted(seen) == rated
    assert len(seen) == len(set(seen)) > 4
    results = client.call("POST", REVIEWS, json={"semester_id_list": [period.id]})
    assert sorted(d["user_id"]["open_id"] for d in results["datas"]) == rated  # the same people are rated


@pytest.mark.parametrize(
    ("body", "params", "code"),
    [
        ({}, {}, 1580102),
        ({"semester_id": "1"}, {}, 1580105),
        ({"semester_id": semesters()[0].id}, {"page_token": "garbage"}, 1580107),
        ({"semester_id": semesters()[0].id}, {"page_size": "0"}, 1580102),
    ],
)
def test_reviewees_refusals(
    client: OaClient, body: dict[str, Any], params: dict[str, str], code: int
) -> None:
    resp = client.request("POST", "/open-apis/performance/v2/reviewees/query", json=body, params=params)
    assert (resp.status_code, resp.json()["code"]) == (400, code)
