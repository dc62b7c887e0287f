"""OA simulator: create (uuid idempotency, form validation), get, list by window, query, cancel, tasks, users."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.common.world import APPROVAL_CODES
from sandbox.launcher import SimProcess
from sandbox.oa.definitions import FILE_WIDGETS
from sandbox.oa.testing import ROOT, OaClient, sample_form, sample_widgets

EXPENSE = APPROVAL_CODES["expense_claim"]
TRAVEL = APPROVAL_CODES["travel_request"]
INSTANCES = "/open-apis/approval/v4/instances"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def people(oa_sim: tuple[SimProcess, OaClient]) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = oa_sim[1].admin("GET", "/users")["users"]
    return users


def sales(people: list[dict[str, Any]], n: int = 0) -> dict[str, Any]:
    return [u for u in people if u["role"] == "employee" and u["department_id"].startswith("od-sales")][n]


def error_of(resp: Any) -> tuple[int, int]:
    return resp.status_code, resp.json()["code"]


def submit(oa: OaClient, user: dict[str, Any], start_ms: int, form: str = "expense_claim") -> str:
    out = oa.admin("POST", "/act/submit", {"approval": form, "user_id": user["user_id"],
                                          "form": sample_widgets(form), "start_time": start_ms})
    return str(out["instance_code"])


# ---------------------------------------------------------------- definitions
@pytest.mark.parametrize("form", list(APPROVAL_CODES))
def test_definitions_carry_the_dictionary_widgets(oa: OaClient, form: str) -> None:
    dictionary = yaml.safe_load((ROOT / "include" / "dictionary.yaml").read_text(encoding="utf-8"))
    expected = dictionary["forms"][form]
    data = oa.call("GET", f"/open-apis/approval/v4/approvals/{APPROVAL_CODES[form]}")
    assert data["approval_name"] == expected["label"]
    assert data["status"] == "ACTIVE"
    widgets = json.loads(data["form"])  # a JSON string, as Feishu returns it
    # After the dictionary's widgets: the simulator's attachment / image widgets (docs/sim_oa.md, Attachments).
    file_widgets = [w for w in FILE_WIDGETS if w[1] not in {raw["type"] for raw in expected["widgets"]}]
    assert [(w["id"], w["type"], w["name"]) for w in widgets] == \
        [(w["id"], w["type"], w["name"]) for w in expected["widgets"]] + file_widgets
    for widget, raw in zip(widgets, expected["widgets"], strict=False):
        if raw.get("value_map"):
            labels = [v["oa"] for v in dictionary["value_maps"][raw["value_map"]]["values"]]
            assert [o["text"] for o in widget["option"]] == labels
    assert [n["name"] for n in data["node_list"]] == ["提交", "审批", "结束"]


# ---------------------------------------------------------------- create & get
@pytest.mark.parametrize("form", list(APPROVAL_CODES))
def test_create_then_get_shows_the_instance_as_feishu_does(oa: OaClient, people: list[dict[str, Any]],
                                                           form: str) -> None:
    user = sales(people)
    before = int(time.time() * 1000)
    resp = oa.create(APPROVAL_CODES[form], user["user_id"], sample_form(form), uuid=f"t-{form}")
    assert resp.status_code == 200, resp.text
    code = resp.json()["data"]["instance_code"]
    inst = oa.call("GET", f"{INSTANCES}/{code}")
    assert inst["instance_code"] == code
    assert inst["approval_code"] == APPROVAL_CODES[form]
    assert inst["approval_name"] in {"立项申请", "费用报销", "差旅申请", "客户拜访计划", "合同金额变更通知", "商机作废通知"}
    assert inst["status"] == "PENDING"
    assert inst["end_time"] == "0"
    assert inst["uuid"] == f"t-{form}"
    assert inst["user_id"] == user["user_id"]
    assert inst["open_id"] == user["open_id"]
    assert inst["department_id"] == user["department_id"]
    assert before <= int(inst["start_time"]) <= int(time.time() * 1000)
    today = (datetime.now(tz=UTC) + timedelta(hours=8)).strftime("%Y%m%d")
    assert inst["serial_number"] == f"{today}0001"  # date + daily counter, the bridge's 项目编号
    widgets = json.loads(inst["form"])  # a JSON *string*, as Feishu returns it
    sent = {w["id"]: w["value"] for w in sample_widgets(form)}
    assert {w["id"]: w["value"] for w in widgets} == sent
    assert all(w["name"] and w["type"] for w in widgets)
    assert [t["type"] for t in inst["timeline"]] == ["START"]
    assert inst["task_list"][0]["status"] == "PENDING"
    assert inst["task_list"][0]["user_id"] != user["user_id"]


def test_serial_numbers_count_up_per_day(oa: OaClient, people: list[dict[str, Any]]) -> None:
    codes = [oa.create(EXPENSE, sales(people)["user_id"], sample_form("expense_claim")).json()["data"]["instance_code"]
             for _ in range(3)]
    serials = [oa.call("GET", f"{INSTANCES}/{c}")["serial_number"] for c in codes]
    assert [int(s[8:]) for s in serials] == [1, 2, 3]
    assert len({s[:8] for s in serials}) == 1


def test_open_id_and_user_id_both_identify_the_applicant(oa: OaClient, people: list[dict[str, Any]]) -> None:
    user = sales(people, 1)
    resp = oa.request("POST", INSTANCES, json={"approval_code": TRAVEL, "open_id": user["open_id"],
                                               "form": sample_form("travel_request")})
    code = resp.json()["data"]["instance_code"]
    assert oa.call("GET", f"{INSTANCES}/{code}")["user_id"] == user["user_id"]


def test_uuid_reuse_answers_60012_and_creates_nothing(oa: OaClient, people: list[dict[str, Any]]) -> None:
    user = sales(people)
    form = sample_form("expense_claim")
    first = oa.create(EXPENSE, user["user_id"], form, uuid="7C468A54-8745-2245-9675-08B7C63E7A87")
    code = first.json()["data"]["instance_code"]
    # Feishu documents that any reuse of a uuid fails with 60012 (identical or not, case-insensitive).
    assert error_of(oa.create(EXPENSE, user["user_id"], form, uuid="7c468a54-8745-2245-9675-08b7c63e7a87")) == (400, 60012)
    other = sample_form("expense_claim", amount=999)
    assert error_of(oa.create(EXPENSE, user["user_id"], other, uuid="7C468A54-8745-2245-9675-08B7C63E7A87")) == (400, 60012)
    assert oa.admin("GET", "/instances")["total"] == 1
    # The documented way back to the instance: GET /instances/{uuid}.
    assert oa.call("GET", f"{INSTANCES}/7c468a54-8745-2245-9675-08b7c63e7a87")["instance_code"] == code


def test_uuid_replay_mode_returns_the_instance_for_an_identical_request(oa: OaClient,
                                                                      people: list[dict[str, Any]]) -> None:
    oa.admin("POST", "/config", {"uuid_replay": "return"})
    user = sales(people)
    form = sample_form("expense_claim")
    code = oa.create(EXPENSE, user["user_id"], form, uuid="u-1").json()["data"]["instance_code"]
    replay = oa.create(EXPENSE, user["user_id"], form, uuid="u-1")
    assert replay.status_code == 200
    assert replay.json()["data"]["instance_code"] == code
    conflict = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim", reason="另一件事"), uuid="u-1")
    assert error_of(conflict) == (400, 60012)
    assert oa.admin("GET", "/instances")["total"] == 1
    assert oa.admin("GET", "/stats")["instances_created"]["api"] == {EXPENSE: 1}


BAD_FORMS = [
    ("not json", "[{"),
    ("not a string", [{"id": "reason", "value": "x"}]),
    ("not an array", json.dumps({"id": "reason", "value": "x"})),
    ("unknown widget", json.dumps([{"id": "no_such_widget", "type": "input", "value": "x"}])),
    ("amount not a number", sample_form("expense_claim", amount="abc")),
    ("text not a string", sample_form("expense_claim", reason=12)),
    ("date not RFC 3339", sample_form("expense_claim", expense_date="2026/11/20")),
    ("option not in the list", sample_form("expense_claim", expense_type="机票")),
    ("widget without value", json.dumps([{"id": "reason", "type": "textarea"}])),
    ("type mismatch", json.dumps([{"id": "reason", "type": "number", "value": 3}])),
    ("duplicate widget", json.dumps([{"id": "reason", "value": "a"}, {"id": "reason", "value": "b"}])),
    ("amount out of range", sample_form("expense_claim", amount=10**30)),
    ("lone surrogate", '[{"id": "reason", "value": "\\ud800"}]'),
]


@pytest.mark.parametrize(("case", "form"), BAD_FORMS, ids=[c for c, _ in BAD_FORMS])
def test_bad_forms_are_refused_with_param_error(oa: OaClient, people: list[dict[str, Any]], case: str,
                                                form: Any) -> None:
    resp = oa.request("POST", INSTANCES, json={"approval_code": EXPENSE, "user_id": sales(people)["user_id"],
                                               "form": form})
    assert error_of(resp) == (400, 1390001), case
    assert resp.json()["msg"].startswith("param is invalid")
    assert oa.admin("GET", "/instances")["total"] == 0


def test_widget_errors_name_the_widget(oa: OaClient, people: list[dict[str, Any]]) -> None:
    resp = oa.create(EXPENSE, sales(people)["user_id"], sample_form("expense_claim", amount=[1]))
    assert "控件=amount" in resp.json()["msg"]


def test_create_refusals(oa: OaClient, people: list[dict[str, Any]]) -> None:
    user = sales(people)
    form = sample_form("expense_claim")
    assert error_of(oa.create("00000000-0000-0000-0000-000000000000", user["user_id"], form)) == (400, 1390002)
    assert error_of(oa.create(EXPENSE, "u_nobody", form)) == (400, 1390004)
    assert error_of(oa.request("POST", INSTANCES, json={"approval_code": EXPENSE, "form": form})) == (400, 1390001)
    assert error_of(oa.create(EXPENSE, user["user_id"], form, department_id="od-finance")) == (400, 1390001)
    assert error_of(oa.create(EXPENSE, user["user_id"], form, uuid="x" * 65)) == (400, 99992402)
    assert error_of(oa.request("POST", INSTANCES, data=b"{oops")) == (400, 1390001)
    assert error_of(oa.request("GET", f"{INSTANCES}/NO-SUCH-INSTANCE")) == (400, 1390003)
    assert oa.admin("GET", "/instances")["total"] == 0


def test_required_widgets_are_not_enforced_on_create(oa: OaClient, people: list[dict[str, Any]]) -> None:
    # Feishu's FAQ: required widgets may be left out of an API create.
    resp = oa.create(EXPENSE, sales(people)["user_id"], json.dumps([{"id": "reason", "value": "只填事由"}]))
    assert resp.status_code == 200


EDGE_VALUES = st.sampled_from(["\ud800", 10**30, -(10**20), 1e300, 1e15, "1e400", " 12 ", "交通", "expense_type-2",
                               "2026-11-20T08:00:00Z", "2026-11-20"])
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
                           | EDGE_VALUES,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widget=st.sampled_from(["reason", "expense_type", "amount", "expense_date", "customer_id", "bogus"]),
       value=JSON_VALUES)
def test_any_widget_value_gets_a_clean_answer(oa: OaClient, people: list[dict[str, Any]], widget: str,
                                              value: Any) -> None:
    """Whatever a client sends in a widget, the answer is a success or Feishu's param error, never a crash."""
    form = json.dumps([{"id": widget, "value": value}], ensure_ascii=False)
    resp = oa.create(EXPENSE, sales(people)["user_id"], form)
    body = resp.json()
    assert (resp.status_code, body["code"]) in {(200, 0), (400, 1390001)}
    if widget == "bogus":
        assert body["code"] == 1390001
    if resp.status_code == 200:
        stored = json.loads(oa.call("GET", f"{INSTANCES}/{body['data']['instance_code']}")["form"])
        assert [w["id"] for w in stored] == [widget]


# ---------------------------------------------------------------- list by window
def test_list_by_creation_window_pages_in_creation_order(oa: OaClient, people: list[dict[str, Any]]) -> None:
    base = int(time.time() * 1000) - 48 * HOUR
    user = sales(people)
    inside = [submit(oa, user, base + i * 60_000) for i in range(7)]
    submit(oa, user, base - 1)  # just before the window
    submit(oa, user, base + 2 * HOUR + 1)  # just after it
    submit(oa, user, base + 5 * 60_000, form="travel_request")  # another definition
    pages, token = [], ""
    while True:
        params: dict[str, Any] = {"approval_code": EXPENSE, "start_time": base, "end_time": base + 2 * HOUR,
                                  "page_size": 3}
        if token:
            params["page_token"] = token
        data = oa.call("GET", INSTANCES, params=params)
        pages.append(data["instance_code_list"])
        assert data["has_more"] == bool(data["page_token"])
        if not data["has_more"]:
            break
        token = data["page_token"]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c for p in pages for c in p] == inside
    # Both ends of the window are inclusive.
    edge = oa.call("GET", INSTANCES, params={"approval_code": EXPENSE, "start_time": base - 1, "end_time": base})
    assert len(edge["instance_code_list"]) == 2


def test_list_refusals(oa: OaClient) -> None:
    now = int(time.time() * 1000)
    ok = {"approval_code": EXPENSE, "start_time": now - HOUR, "end_time": now}
    assert error_of(oa.request("GET", INSTANCES, params={**ok, "page_size": 101})) == (400, 99992402)
    assert error_of(oa.request("GET", INSTANCES, params={**ok, "page_size": 0})) == (400, 99992402)
    assert error_of(oa.request("GET", INSTANCES, params={**ok, "start_time": now - 11 * HOUR})) == (400, 1390001)
    assert error_of(oa.request("GET", INSTANCES, params={**ok, "start_time": now + 1})) == (400, 1390001)
    assert error_of(oa.request("GET", INSTANCES, params={**ok, "page_token": "%%%"})) == (400, 1390001)
    assert error_of(oa.request("GET", INSTANCES, params={**ok, "approval_code": "NOPE"})) == (400, 1390002)
    no_start = {k: v for k, v in ok.items() if k != "start_time"}
    assert error_of(oa.request("GET", INSTANCES, params=no_start)) == (400, 99992402)
    # The 10-hour rule can be relaxed for a bulk reader.
    oa.admin("POST", "/config", {"max_list_window_hours": 0})
    assert oa.request("GET", INSTANCES, params={**ok, "start_time": 0}).status_code == 200


# ---------------------------------------------------------------- query
def _query(oa: OaClient, body: dict[str, Any], **params: Any) -> Any:
    return oa.request("POST", f"{INSTANCES}/query", params=params or None, json=body)


def test_query_filters(oa: OaClient, people: list[dict[str, Any]]) -> None:
    now = int(time.time() * 1000)
    alice, bob = sales(people, 0), sales(people, 1)
    a1 = submit(oa, alice, now - 3 * HOUR)
    a2 = submit(oa, alice, now - 2 * HOUR)
    b1 = submit(oa, bob, now - HOUR)
    t1 = submit(oa, alice, now - HOUR, form="travel_request")
    old = submit(oa, alice, now - 40 * 24 * HOUR)
    oa.admin("POST", "/act/approve", {"instance_code": a1})
    oa.admin("POST", "/act/withdraw", {"instance_code": a2})

    def codes(body: dict[str, Any], **params: Any) -> list[str]:
        data = _query(oa, body, **params).json()["data"]
        return [i["instance"]["code"] for i in data["instance_list"]]

    assert codes({"approval_code": EXPENSE}) == [old, a1, a2, b1]
    assert codes({"approval_code": EXPENSE, "instance_status": "APPROVED"}) == [a1]
    assert codes({"approval_code": EXPENSE, "instance_status": "RECALL"}) == [a2]
    assert codes({"approval_code": EXPENSE, "instance_status": "PENDING"}) == [old, b1]
    assert codes({"approval_code": EXPENSE, "instance_status": "ALL"}) == [old, a1, a2, b1]
    assert codes({"user_id": alice["open_id"]}) == [old, a1, a2, t1]  # user_id_type defaults to open_id
    assert codes({"user_id": bob["user_id"]}, user_id_type="user_id") == [b1]
    assert codes({"approval_code": EXPENSE, "instance_start_time_from": str(now - 4 * HOUR),
                  "instance_start_time_to": str(now)}) == [a1, a2, b1]
    assert codes({"instance_code": t1}) == [t1]
    data = _query(oa, {"approval_code": EXPENSE, "instance_status": "APPROVED"}, user_id_type="user_id").json()["data"]
    item = data["instance_list"][0]
    assert data["count"] == 1
    assert item["instance"]["status"] == "approved"
    assert item["instance"]["user_id"] == alice["user_id"]
    assert item["approval"]["name"] == "费用报销"
    assert item["instance"]["serial_id"]
    assert "page_token" not in data


def test_query_pages_and_refusals(oa: OaClient, people: list[dict[str, Any]]) -> None:
    now = int(time.time() * 1000)
    made = [submit(oa, sales(people), now - HOUR + i) for i in range(12)]
    seen, token = [], ""
    while True:
        params: dict[str, Any] = {"page_size": 5, **({"page_token": token} if token else {})}
        data = _query(oa, {"approval_code": EXPENSE}, **params).json()["data"]
        seen += [i["instance"]["code"] for i in data["instance_list"]]
        assert data["count"] == 12
        if not data["has_more"]:
            break
        token = data["page_token"]
    assert seen == made
    assert error_of(_query(oa, {"approval_code": EXPENSE}, page_size=4)) == (400, 99992402)
    assert error_of(_query(oa, {"approval_code": EXPENSE}, page_size=201)) == (400, 99992402)
    assert error_of(_query(oa, {})) == (400, 1390001)
    assert error_of(_query(oa, {"approval_code": EXPENSE, "instance_status": "CANCELED"})) == (400, 1390001)
    assert error_of(_query(oa, {"approval_code": EXPENSE, "instance_start_time_from": "0"})) == (400, 1390001)
    span = {"instance_start_time_from": "0", "instance_start_time_to": str(31 * 24 * HOUR)}
    assert error_of(_query(oa, {"approval_code": EXPENSE, **span})) == (400, 1390001)
    assert error_of(_query(oa, {"approval_code": "NOPE"})) == (400, 1390002)
    assert error_of(_query(oa, {"instance_code": "NOPE"})) == (400, 1390003)


def test_query_lag_hides_fresh_instances(oa: OaClient, people: list[dict[str, Any]]) -> None:
    oa.admin("POST", "/config", {"query_lag_ms": 60_000})
    now = int(time.time() * 1000)
    older = submit(oa, sales(people), now - 5 * 60_000)
    fresh = oa.create(EXPENSE, sales(people)["user_id"], sample_form("expense_claim")).json()["data"]["instance_code"]
    found = [i["instance"]["code"] for i in _query(oa, {"approval_code": EXPENSE}).json()["data"]["instance_list"]]
    assert found == [older]
    # The listing by creation window is real time.
    listed = oa.call("GET", INSTANCES, params={"approval_code": EXPENSE, "start_time": now - HOUR, "end_time": now + HOUR})
    assert listed["instance_code_list"] == [older, fresh]


# ---------------------------------------------------------------- cancel & tasks
def test_cancel_by_the_applicant_only(oa: OaClient, people: list[dict[str, Any]]) -> None:
    user, other = sales(people, 0), sales(people, 1)
    code = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim")).json()["data"]["instance_code"]
    body = {"approval_code": EXPENSE, "instance_code": code, "user_id": other["user_id"]}
    resp = oa.request("POST", f"{INSTANCES}/cancel", params={"user_id_type": "user_id"}, json=body)
    assert error_of(resp) == (403, 1390009)
    body["user_id"] = user["open_id"]  # default user_id_type is open_id
    assert oa.request("POST", f"{INSTANCES}/cancel", json=body).json()["code"] == 0
    inst = oa.call("GET", f"{INSTANCES}/{code}")
    assert inst["status"] == "CANCELED"
    assert inst["timeline"][-1]["type"] == "CANCEL"
    assert inst["end_time"] != "0"
    assert error_of(oa.request("POST", f"{INSTANCES}/cancel", json=body)) == (400, 1390001)
    body["instance_code"] = "NOPE"
    assert error_of(oa.request("POST", f"{INSTANCES}/cancel", json=body)) == (400, 1390003)


def test_task_approve_reject_resubmit_endpoints(oa: OaClient, people: list[dict[str, Any]]) -> None:
    user = sales(people)
    first = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim")).json()["data"]["instance_code"]
    task = oa.call("GET", f"{INSTANCES}/{first}")["task_list"][0]
    body = {"approval_code": EXPENSE, "instance_code": first, "user_id": user["user_id"], "task_id": task["id"]}
    assert error_of(oa.request("POST", "/open-apis/approval/v4/tasks/approve", params={"user_id_type": "user_id"},
                               json=body)) == (403, 1390009)  # the applicant is not the approver
    body["user_id"] = task["user_id"]
    ok = oa.request("POST", "/open-apis/approval/v4/tasks/approve", params={"user_id_type": "user_id"}, json=body)
    assert ok.json()["code"] == 0
    inst = oa.call("GET", f"{INSTANCES}/{first}")
    assert inst["status"] == "APPROVED"
    assert inst["task_list"][0]["status"] == "APPROVED"
    assert [t["type"] for t in inst["timeline"]] == ["START", "PASS"]
    again = oa.request("POST", "/open-apis/approval/v4/tasks/approve", params={"user_id_type": "user_id"}, json=body)
    assert error_of(again) == (400, 1390010)  # approving twice: task not found, as the vendor FAQ says

    second = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim")).json()["data"]["instance_code"]
    task = oa.call("GET", f"{INSTANCES}/{second}")["task_list"][0]
    body = {"approval_code": EXPENSE, "instance_code": second, "user_id": task["open_id"], "task_id": task["id"],
            "comment": "金额不符"}
    assert oa.request("POST", "/open-apis/approval/v4/tasks/reject", json=body).json()["code"] == 0
    assert oa.call("GET", f"{INSTANCES}/{second}")["status"] == "REJECTED"
    resubmit = {"approval_code": EXPENSE, "instance_code": second, "user_id": user["open_id"], "task_id": task["id"],
                "form": sample_form("expense_claim", amount=100)}
    assert oa.request("POST", "/open-apis/approval/v4/tasks/resubmit", json=resubmit).json()["code"] == 0
    inst = oa.call("GET", f"{INSTANCES}/{second}")
    assert inst["status"] == "PENDING"
    assert inst["end_time"] == "0"
    assert {w["id"]: w["value"] for w in json.loads(inst["form"])}["amount"] == 100
    assert [t["status"] for t in inst["task_list"]] == ["REJECTED", "PENDING"]


# ---------------------------------------------------------------- users
def test_batch_get_id_maps_emails_and_mobiles(oa: OaClient, people: list[dict[str, Any]]) -> None:
    user = sales(people)
    path = "/open-apis/contact/v3/users/batch_get_id"
    body = {"emails": [user["email"].upper(), "former.sales@example.com"], "mobiles": [f"+86{user['mobile']}", "13000000000"]}
    data = oa.call("POST", path, params={"user_id_type": "user_id"}, json=body)
    assert data["user_list"][0]["user_id"] == user["user_id"]
    assert data["user_list"][0]["email"] == user["email"].upper()
    # The CRM owner who left has no OA account: answered without user_id.
    assert data["user_list"][1] == {"email": "former.sales@example.com"}
    assert data["user_list"][2]["user_id"] == user["user_id"]
    assert data["user_list"][3] == {"mobile": "13000000000"}
    default = oa.call("POST", path, json={"emails": [user["email"]]})
    assert default["user_list"][0]["user_id"] == user["open_id"]  # user_id_type defaults to open_id
    assert error_of(oa.request("POST", path, json={"emails": [f"x{i}@example.com" for i in range(51)]})) == (400, 99992402)
    assert error_of(oa.request("POST", path, params={"user_id_type": "email"}, json={})) == (400, 99992402)
