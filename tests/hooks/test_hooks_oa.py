"""OaHook over real HTTP against the Feishu simulator: idempotent creates (uuid, 60012 recovery), the
10-hour listing windows and their edges, 30-day query spans, user ids, tokens and the Test button."""

from __future__ import annotations

from typing import Any

import pytest
from tests.hooks.hooks_support import (
    RATE_LIMITS_OFF,
    SEEDED,
    Sim,
    all_at_once,
    connection,
    oa_conn,
    oa_hook,
    sim_fixture,
)

from bridge.hooks.errors import AuthError, ConflictError, NotFoundError, ValidationError
from bridge.hooks.oa import LIST_WINDOW_MS, OaHook
from sandbox import launcher
from sandbox.oa.testing import sample_widgets

PROJECT = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1001"
EXPENSE = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1002"
DAY = 86_400_000
CREATE = "POST /open-apis/approval/v4/instances"
LIST = "GET /open-apis/approval/v4/instances"


oa = sim_fixture("oa", "oa_hook", *RATE_LIMITS_OFF, *SEEDED)


@pytest.fixture(autouse=True)
def _clean(oa: Sim) -> None:
    oa.reset(
        ("POST", "/tokens/restore", None),
        (
            "POST",
            "/config",
            {"rate_limits": "off", "uuid_replay": "conflict", "expired_token_code": 99991663},
        ),
    )


@pytest.fixture
def hook(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> OaHook:
    return oa_hook(oa, monkeypatch)


@pytest.fixture(scope="module")
def users(oa: Sim) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = oa.admin("GET", "/users")["users"]
    return people


def dump(oa: Sim, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = oa.admin("GET", "/instances", params={**params, "offset": len(items), "limit": 1000})
        items.extend(page["items"])
        if len(items) >= page["total"]:
            return items


def now_ms(oa: Sim) -> int:
    return int(oa.admin("GET", "/clock").get("now_ms") or 0) or int(__import__("time").time() * 1000)


def test_create_is_idempotent_by_uuid(oa: Sim, hook: OaHook, users: list[dict[str, Any]]) -> None:
    applicant = users[0]["user_id"]
    form = sample_widgets("expense_claim")
    first = hook.create_instance(EXPENSE, applicant, form, "hook-uuid-1", title="差旅报销")
    again = hook.create_instance(EXPENSE, applicant, form, "HOOK-UUID-1")  # Feishu uuids are case-insensitive
    assert first == again
    assert [i["instance_code"] for i in dump(oa, uuid="hook-uuid-1")] == [first]
    detail = hook.get_instance(first)
    assert detail["status"] == "PENDING"
    assert detail["user_id"] == applicant
    assert oa.stats()["errors"].get("60012") == 1


def test_uuid_used_for_another_instance_is_a_conflict(hook: OaHook, users: list[dict[str, Any]]) -> None:
    hook.create_instance(EXPENSE, users[0]["user_id"], sample_widgets("expense_claim"), "hook-uuid-2")
    with pytest.raises(ConflictError, match="another instance"):
        hook.create_instance(EXPENSE, users[1]["user_id"], sample_widgets("expense_claim"), "hook-uuid-2")


def test_friendly_uuid_replay_mode_works_too(oa: Sim, hook: OaHook, users: list[dict[str, Any]]) -> None:
    oa.admin("POST", "/config", {"uuid_replay": "return"})
    form = sample_widgets("travel_request")
    code = hook.create_instance(
        "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1003", users[2]["user_id"], form, "hook-uuid-3"
    )
    assert (
        hook.create_instance("B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1003", users[2]["user_id"], form, "hook-uuid-3")
        == code
    )
    assert oa.requests_to("GET /open-apis/approval/v4/instances/{instance_id}") == 0


def test_a_bad_form_is_refused_once_with_feishus_code(
    oa: Sim, hook: OaHook, users: list[dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError) as info:
        hook.create_instance(
            EXPENSE, users[0]["user_id"], sample_widgets("expense_claim", amount="很多"), "bad-1"
        )
    assert info.value.code == "1390001"
    assert info.value.status == 400
    assert "amount" in info.value.message
    assert info.value.correlation_id
    assert oa.requests_to(CREATE) == 1
    with pytest.raises(ValidationError, match="department"):
        hook.create_instance(
            EXPENSE,
            users[0]["user_id"],
            sample_widgets("expense_claim"),
            "bad-2",
            department_id="not-my-department",
        )
    right = hook.create_instance(
        EXPENSE,
        users[0]["user_id"],
        sample_widgets("expense_claim"),
        "good-dept",
        department_id=users[0]["department_id"],
    )
    assert hook.get_instance(right)["department_id"] == users[0]["department_id"]
    with pytest.raises(NotFoundError) as missing:
        hook.get_instance("00000000-0000-0000-0000-000000000000")
    assert missing.value.code == "1390003"


def test_listing_windows_split_at_10_hours_without_double_counting(
    oa: Sim, hook: OaHook, users: list[dict[str, Any]]
) -> None:
    start = now_ms(oa) - 40 * DAY
    edges = [
        start,
        start + LIST_WINDOW_MS,
        start + LIST_WINDOW_MS + 1,
        start + 2 * LIST_WINDOW_MS + 1,
        start + 2 * LIST_WINDOW_MS + 2,
        start + 25 * 3_600_000,
    ]
    made = []
    for n, at in enumerate(edges + [start + 3_600_000 + k for k in range(230)]):  # 230 in one window: 3 pages
        item = oa.admin(
            "POST",
            "/act/submit",
            {
                "approval": "visit_plan",
                "user_id": users[n % 5]["user_id"],
                "form": sample_widgets("visit_plan"),
                "start_time": at,
            },
        )
        made.append(item["instance_code"])
    pages = list(
        hook.iter_instance_codes("B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1004", start, start + 25 * 3_600_000)
    )
    got = [c for p in pages for c in p]
    assert len(got) == len(set(got))
    assert set(got) == set(made)
    assert all(len(p) <= 100 for p in pages)
    assert hook.api_calls[LIST.replace("GET ", "GET ")] == 3 + 1 + 1  # window 1: 3 pages; windows 2 and 3
    beyond = [
        c
        for p in hook.iter_instance_codes(
            "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1004", start + 1, start + LIST_WINDOW_MS
        )
        for c in p
    ]
    assert made[0] not in beyond
    assert made[1] in beyond
    assert made[2] not in beyond


def history_range(oa: Sim, approval: str) -> tuple[int, int]:
    starts = [int(i["start_time"]) for i in dump(oa, approval=approval, origin="seed")]
    return min(starts), max(starts)


def test_listing_matches_the_seeded_history(oa: Sim, hook: OaHook) -> None:
    first, _ = history_range(oa, "expense_claim")
    start, end = first, first + 120 * DAY
    expected = {
        i["instance_code"] for i in dump(oa, approval="expense_claim") if start <= int(i["start_time"]) <= end
    }
    got = [c for p in hook.iter_instance_codes(EXPENSE, start, end) for c in p]
    assert len(got) == len(set(got))
    assert set(got) == expected
    assert expected


def test_query_spans_30_days_and_maps_statuses(oa: Sim, hook: OaHook) -> None:
    start, end = history_range(oa, "project_initiation")
    assert end - start > 200 * DAY
    seeded = [i for i in dump(oa, approval="project_initiation") if start <= int(i["start_time"]) <= end]
    items = [i for p in hook.query_instances(PROJECT, start, end) for i in p]
    assert sorted(i["instance"]["code"] for i in items) == sorted(i["instance_code"] for i in seeded)
    assert hook.api_calls["POST /open-apis/approval/v4/instances/query"] >= (end - start) // (30 * DAY)
    approved = [i for p in hook.query_instances(PROJECT, start, end, status="APPROVED") for i in p]
    assert {i["instance"]["status"] for i in approved} == {"approved"}
    assert len(approved) == sum(1 for i in seeded if i["status"] == "APPROVED")
    withdrawn = [i for p in hook.query_instances(PROJECT, start, end, status="CANCELED") for i in p]
    assert len(withdrawn) == sum(1 for i in seeded if i["status"] == "CANCELED")
    one = seeded[0]["user_id"]
    mine = [i for p in hook.query_instances(PROJECT, start, end, user_id=one) for i in p]
    assert mine
    assert {i["instance"]["user_id"] for i in mine} == {one}
    with pytest.raises(ValueError, match="status must be one of"):
        next(hook.query_instances(PROJECT, start, end, status="DONE"))


def test_instance_refs_are_the_query_items_typed(oa: Sim, hook: OaHook) -> None:
    start, end = history_range(oa, "project_initiation")
    items = [i for p in hook.query_instances(PROJECT, start, end) for i in p]
    refs = [r for p in hook.iter_instance_refs(PROJECT, start, end) for r in p]
    assert [r.code for r in refs] == [i["instance"]["code"] for i in items]
    assert all(r.start_ms == int(i["instance"]["start_time"]) for r, i in zip(refs, items, strict=True))
    ended = {i["instance"]["code"] for i in items if int(i["instance"].get("end_time") or 0) > 0}
    assert {r.code for r in refs if r.end_ms is not None} == ended
    approved = [r for p in hook.iter_instance_refs(PROJECT, start, end, status="APPROVED") for r in p]
    assert 0 < len(approved) < len(refs)


def test_subscribe_approval_once_then_already_subscribed(oa: Sim, hook: OaHook) -> None:
    assert hook.subscribe_approval(EXPENSE) is True
    assert hook.subscribe_approval(EXPENSE) is False  # Feishu: "subscription existed"
    assert EXPENSE in oa.admin("GET", "/callback")["subscribed"]
    with pytest.raises(NotFoundError):
        hook.subscribe_approval("NO-SUCH-APPROVAL")


def test_user_ids_by_email_and_mobile_in_batches_of_50(
    oa: Sim, hook: OaHook, users: list[dict[str, Any]]
) -> None:
    emails = [u["email"].upper() if n % 2 else u["email"] for n, u in enumerate(users)]
    emails += [f"nobody{n}@example.com" for n in range(40)] + ["former.sales@example.com"]
    mobiles = [("+86" + u["mobile"]) if n % 3 == 0 else u["mobile"] for n, u in enumerate(users)]
    out = hook.user_ids(emails=emails, mobiles=mobiles)
    assert len(emails) > 50
    assert hook.api_calls["POST /open-apis/contact/v3/users/batch_get_id"] == 2
    for n, u in enumerate(users):
        assert out[emails[n]] == u["user_id"]
        assert out[mobiles[n]] == u["user_id"]
    assert out["former.sales@example.com"] is None
    assert all(out[f"nobody{n}@example.com"] is None for n in range(40))


def test_user_names_by_id_in_batches_of_50(hook: OaHook, users: list[dict[str, Any]]) -> None:
    ids = [u["user_id"] for u in users] + [f"u_nobody{n}" for n in range(60)]
    names = hook.user_names(ids)
    assert len(ids) > 50
    assert hook.api_calls["GET /open-apis/contact/v3/users/batch"] == -(-len(ids) // 50)
    assert names == {u["user_id"]: u["name"] for u in users}, "unknown ids are left out"


def test_approval_definition_and_cancel(oa: Sim, hook: OaHook, users: list[dict[str, Any]]) -> None:
    definition = hook.approval_definition(PROJECT)
    assert definition["approval_name"] == "立项申请"
    assert isinstance(definition["form"], str)
    code = hook.create_instance(
        EXPENSE, users[3]["user_id"], sample_widgets("expense_claim"), "hook-cancel-1"
    )
    hook.cancel_instance(EXPENSE, code, users[3]["user_id"])
    assert hook.get_instance(code)["status"] == "CANCELED"


def test_expired_token_mid_run_is_renewed_once(oa: Sim, hook: OaHook) -> None:
    start, _end = history_range(oa, "expense_claim")
    got = []
    for n, page in enumerate(hook.iter_instance_codes(EXPENSE, start, start + 60 * DAY)):
        got.extend(page)
        if n == 0:
            oa.admin("POST", "/tokens/expire")
    oa.admin("POST", "/config", {"expired_token_code": 99991677})
    oa.admin("POST", "/tokens/expire")
    hook.approval_definition(EXPENSE)
    stats = oa.stats()
    # First call + one renewal per expiry (the first may get the tenant's still-valid current token back).
    assert stats["requests"]["POST /open-apis/auth/v3/tenant_access_token/internal"] == 3
    assert stats["tokens_issued"] >= 2
    assert stats["errors"].get("99991663") == 1
    assert stats["errors"].get("99991677") == 1
    assert len(got) == len(set(got)) > 1


def test_threads_share_one_tenant_token(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = connection(monkeypatch, oa_conn(oa.url))
    done, errors = all_at_once(
        8, lambda: OaHook(conn_id), lambda h: h.approval_definition(EXPENSE)["approval_name"]
    )
    assert not errors
    assert done == ["费用报销"] * 8
    assert oa.requests_to("POST /open-apis/auth/v3/tenant_access_token/internal") == 1


def test_revoked_app_secret_fails_fast(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = connection(monkeypatch, oa_conn(oa.url))
    OaHook(conn_id).approval_definition(EXPENSE)
    oa.admin("POST", "/tokens/revoke")
    oa.admin("POST", "/stats/reset")
    _, errors = all_at_once(5, lambda: OaHook(conn_id), lambda h: h.approval_definition(EXPENSE))
    assert len(errors) == 5
    assert all(isinstance(e, AuthError) for e in errors)
    assert oa.requests_to("POST /open-apis/auth/v3/tenant_access_token/internal") == 1
    assert oa.requests_to("GET /open-apis/approval/v4/approvals/{approval_code}") <= 5
    assert "10014" in str(errors[0])
    assert launcher.OA_APP_SECRET not in str(errors[0])


def test_connection_test_button(oa: Sim, hook: OaHook, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = hook.test_connection()
    assert ok
    assert "立项申请" in message
    ok, message = OaHook(
        connection(monkeypatch, {**oa_conn(oa.url), "password": "not-the-secret"})
    ).test_connection()
    assert not ok
    assert "10014" in message
    assert "not-the-secret" not in message
