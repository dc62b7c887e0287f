"""OA simulator admin API: people's actions (status transitions), seeding, stats, events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.common.world import APPROVAL_CODES, World
from sandbox.oa.testing import OaClient, sample_form, sample_widgets

EXPENSE = APPROVAL_CODES["expense_claim"]
INSTANCES = "/open-apis/approval/v4/instances"
NOW = 1_795_600_000_000  # a fixed "now" for deterministic worlds
OA_SIM_ARGS = ("--seed", "42")


def applicant(oa: OaClient) -> dict[str, Any]:
    users = oa.admin("GET", "/users")["users"]
    return next(u for u in users if u["role"] == "employee" and u["department_id"] == "od-sales-east")


def new_instance(oa: OaClient) -> str:
    out = oa.admin("POST", "/act/submit", {"approval": "expense_claim", "email": applicant(oa)["email"],
                                          "form": sample_widgets("expense_claim")})
    return str(out["instance_code"])


def act(oa: OaClient, action: str, code: str, expect: int = 200, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = oa.admin("POST", f"/act/{action}", {"instance_code": code, **extra}, expect=expect)
    return result


# ---------------------------------------------------------------- transitions
@pytest.mark.parametrize(("actions", "status", "timeline"), [
    (["approve"], "APPROVED", ["START", "PASS"]),
    (["reject"], "REJECTED", ["START", "REJECT"]),
    (["withdraw"], "CANCELED", ["START", "CANCEL"]),
    (["delete"], "DELETED", ["START", "DELETE"]),
    (["reject", "resubmit"], "PENDING", ["START", "REJECT", "START"]),
    (["withdraw", "resubmit"], "PENDING", ["START", "CANCEL", "START"]),
    (["reject", "resubmit", "approve"], "APPROVED", ["START", "REJECT", "START", "PASS"]),
    (["approve", "delete"], "DELETED", ["START", "PASS", "DELETE"]),
    # a revoke (撤销) of an approved instance: REVERTED, no timeline type of its own (approval.yaml)
    (["approve", "revoke"], "REVERTED", ["START", "PASS"]),
    (["approve", "revoke", "delete"], "DELETED", ["START", "PASS", "DELETE"]),
])
def test_people_move_an_instance_through_its_statuses(oa: OaClient, actions: list[str], status: str,
                                                      timeline: list[str]) -> None:
    code = new_instance(oa)
    for action in actions:
        act(oa, action, code)
    inst = oa.call("GET", f"{INSTANCES}/{code}")
    assert inst["status"] == status
    assert [t["type"] for t in inst["timeline"]] == timeline
    assert (inst["end_time"] == "0") == (status == "PENDING")
    assert inst["reverted"] is (status == "REVERTED")
    times = [int(t["create_time"]) for t in inst["timeline"]]
    assert times == sorted(times)


@pytest.mark.parametrize(("before", "action"), [
    ([], "resubmit"), (["approve"], "approve"), (["approve"], "reject"), (["approve"], "withdraw"),
    (["approve"], "resubmit"), (["delete"], "delete"), (["delete"], "resubmit"), (["reject"], "approve"),
    ([], "revoke"), (["reject"], "revoke"), (["withdraw"], "revoke"), (["approve", "revoke"], "revoke"),
    (["approve", "revoke"], "approve"), (["approve", "revoke"], "resubmit"),
])
def test_transitions_feishu_does_not_allow_are_refused(oa: OaClient, before: list[str], action: str) -> None:
    code = new_instance(oa)
    for step in before:
        act(oa, step, code)
    status = oa.call("GET", f"{INSTANCES}/{code}")["status"]
    act(oa, action, code, expect=409)
    assert oa.call("GET", f"{INSTANCES}/{code}")["status"] == status


def test_actions_are_stamped_with_the_server_clock(oa: OaClient) -> None:
    code = new_instance(oa)
    clock = oa.admin("POST", "/clock", {"advance_ms": 3 * 86_400_000})
    inst = act(oa, "approve", code, comment="同意")
    passed = inst["timeline"][-1]
    assert abs(int(passed["create_time"]) - clock["now_ms"]) < 5_000
    assert passed["comment"] == "同意"
    assert passed["task_id"] == inst["task_list"][0]["id"]
    assert inst["end_time"] == passed["create_time"]


def test_back_dated_submit_gets_that_day_s_serial(oa: OaClient) -> None:
    start = NOW - 10 * 86_400_000
    out = oa.admin("POST", "/act/submit", {"approval": "visit_plan", "user_id": applicant(oa)["user_id"],
                                          "form": sample_widgets("visit_plan"), "start_time": start})
    inst = oa.call("GET", f"{INSTANCES}/{out['instance_code']}")
    assert inst["start_time"] == str(start)
    assert out["serial_number"] == inst["serial_number"]
    assert inst["serial_number"].endswith("0001")


def test_admin_submit_refusals(oa: OaClient) -> None:
    oa.admin("POST", "/act/submit", {"approval": "nope", "email": "x@example.com"}, expect=404)
    oa.admin("POST", "/act/submit", {"approval": "expense_claim", "email": "former.sales@example.com"}, expect=404)
    oa.admin("POST", "/act/submit", {"approval": "expense_claim", "email": applicant(oa)["email"],
                                    "form": [{"id": "amount", "value": "many"}]}, expect=400)
    act(oa, "approve", "NO-SUCH", expect=404)


# ---------------------------------------------------------------- seeding
def test_seeding_is_deterministic(oa: OaClient) -> None:
    body = {"seed": 5, "oa_instances": 400, "companies": 50, "deals": 80, "now_ms": NOW}
    first = oa.admin("POST", "/seed", body)
    assert first["inserted"] == 400
    assert first["instances"] == 400
    dump1 = oa.all_instances()
    oa.admin("POST", "/seed", body)
    assert oa.all_instances() == dump1
    world = World(seed=5, oa_instances=400, companies=50, deals=80, now_ms=NOW)
    expected = {i.instance_code: i for i in world.iter_oa_instances()}
    assert {d["instance_code"] for d in dump1} == set(expected)
    sample = dump1[17]
    truth = expected[sample["instance_code"]]
    assert (sample["status"], sample["serial_number"], sample["start_time"], sample["uuid"]) == \
        (truth.status, truth.serial_number, str(truth.start_ms), truth.uuid)
    assert json.loads(sample["form"]) == truth.form
    assert len({d["serial_number"] for d in dump1}) == 400  # serial numbers are unique in the tenant
    oa.admin("POST", "/seed", {**body, "seed": 6})
    assert {d["instance_code"] for d in oa.all_instances()}.isdisjoint(set(expected))


def test_seeded_history_reads_like_live_instances(oa: OaClient) -> None:
    oa.admin("POST", "/seed", {"seed": 9, "oa_instances": 200, "now_ms": NOW})
    dump = oa.all_instances()
    approved = next(d for d in dump if d["status"] == "APPROVED")
    inst = oa.call("GET", f"{INSTANCES}/{approved['instance_code']}")
    assert [t["type"] for t in inst["timeline"]] == ["START", "PASS"]
    assert inst["timeline"][1]["create_time"] == inst["end_time"]
    # A seeded instance can be acted upon like any other.
    pending = next(d for d in dump if d["status"] == "PENDING")
    after = act(oa, "reject", pending["instance_code"])
    assert [t["type"] for t in after["timeline"]] == ["START", "REJECT"]
    assert oa.admin("GET", "/instances", params={"status": "REJECTED", "limit": 1})["total"] >= 1
    # The world's users replaced the previous ones: its employees resolve by e-mail.
    emp = World(seed=9).oa_users[0]
    found = oa.call("POST", "/open-apis/contact/v3/users/batch_get_id", params={"user_id_type": "user_id"},
                    json={"emails": [emp.email]})
    assert found["user_list"][0]["user_id"] == emp.user_id


def test_reset_with_reseed_restores_the_startup_world(oa: OaClient) -> None:
    assert oa.admin("GET", "/health")["instances"] == 0
    out = oa.admin("POST", "/reset", {"reseed": True})
    assert out["seeded"] == 300
    assert oa.admin("GET", "/health")["instances"] == 300


# ---------------------------------------------------------------- stats
def test_stats_count_requests_writes_tokens_and_faults(oa: OaClient) -> None:
    user = applicant(oa)
    for _ in range(2):
        oa.create(EXPENSE, user["user_id"], sample_form("expense_claim"))
    oa.create(APPROVAL_CODES["visit_plan"], user["user_id"], sample_form("visit_plan"))
    new_instance(oa)  # an admin submit is not a bridge write
    oa.admin("POST", "/faults", {"kind": "error", "path": "/approvals/", "status": 503, "count": 1})
    oa.request("GET", f"/open-apis/approval/v4/approvals/{EXPENSE}")
    stats = oa.admin("GET", "/stats")
    assert stats["instances_created"]["api"] == {EXPENSE: 2, APPROVAL_CODES["visit_plan"]: 1}
    assert stats["instances_created_by_form"]["expense_claim"] == 2
    assert stats["instances_created"]["admin"] == {EXPENSE: 1}
    assert stats["requests"]["POST /open-apis/approval/v4/instances"] == 3
    assert stats["tokens_issued"] == 1
    assert stats["faults_fired"] == {"error": 1}
    assert stats["responses"]["GET /open-apis/approval/v4/approvals/{approval_code} -> 503"] == 1
    oa.admin("POST", "/stats/reset")
    assert oa.admin("GET", "/stats")["requests"] == {}


# ---------------------------------------------------------------- events
class _Receiver(BaseHTTPRequestHandler):
    events: list[dict[str, Any]] = []
    arrived = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if body.get("type") == "url_verification":
            answer = json.dumps({"challenge": body["challenge"]}).encode()
        else:
            type(self).events.append(body)
            type(self).arrived.set()
            answer = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.events = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feishu/events"
    finally:
        server.shutdown()
        server.server_close()


def test_status_changes_reach_the_registered_callback(oa: OaClient, receiver: str) -> None:
    oa.admin("POST", "/callback", {"url": receiver, "all_codes": False})
    visit = APPROVAL_CODES["visit_plan"]
    assert oa.request("POST", f"/open-apis/approval/v4/approvals/{EXPENSE}/subscribe").json()["code"] == 0
    again = oa.request("POST", f"/open-apis/approval/v4/approvals/{EXPENSE}/subscribe").json()
    assert again["code"] == 1390007
    user = applicant(oa)
    code = oa.create(EXPENSE, user["user_id"], sample_form("expense_claim"), uuid="evt-1").json()["data"]["instance_code"]
    oa.create(visit, user["user_id"], sample_form("visit_plan"))  # not subscribed: no event
    act(oa, "approve", code)
    flushed = oa.admin("POST", "/events/flush")
    assert flushed["idle"]
    assert flushed["delivered"] == 2
    events = [e["event"] for e in _Receiver.events]
    assert [(e["instance_code"], e["status"]) for e in events] == [(code, "PENDING"), (code, "APPROVED")]
    first = _Receiver.events[0]
    assert first["type"] == "event_callback"
    assert first["token"]
    assert first["event"]["type"] == "approval_instance"
    assert events[0]["approval_code"] == EXPENSE
    assert events[0]["uuid"] == "evt-1"
    assert int(events[1]["operate_time"]) >= int(events[0]["operate_time"])
    # a revoke reaches the callback as REVERTED, operate_time an int64 there (Feishu's event doc)
    act(oa, "revoke", code)
    assert oa.admin("POST", "/events/flush")["idle"]
    revoked = _Receiver.events[-1]["event"]
    assert (revoked["instance_code"], revoked["status"]) == (code, "REVERTED")
    assert isinstance(revoked["operate_time"], int)
    assert isinstance(events[1]["operate_time"], str)


def test_callback_must_be_loopback_and_answer_the_challenge(oa: OaClient) -> None:
    oa.admin("POST", "/callback", {"url": "http://example.com/hook"}, expect=400)
    oa.admin("POST", "/callback", {"url": "http://127.0.0.1:9/nothing-listens"}, expect=400)
    assert oa.admin("GET", "/callback")["url"] is None
