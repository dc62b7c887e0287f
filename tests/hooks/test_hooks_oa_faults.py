"""OaHook against a misbehaving Feishu, over real HTTP: the ambiguous create (the instance was committed but
the answer lost: exactly one instance, same code), 5xx and 429, Feishu's own frequency limit, repeated pages,
looping cursors, proxy pages, oversized bodies."""

from __future__ import annotations

import logging
import re
import time

import pytest
from tests.hooks.hooks_support import PROXY_PAGES, RATE_LIMITS_OFF, Sim, sim_fixture
from tests.hooks.hooks_support import oa_hook as hook

from bridge.hooks.errors import BadResponseError, RateLimitedError
from sandbox.oa.testing import sample_widgets

EXPENSE = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1002"
VISIT = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1004"
DAY = 86_400_000
CREATE = "POST /open-apis/approval/v4/instances"
LIST = "GET /open-apis/approval/v4/instances"
GET = "GET /open-apis/approval/v4/instances/{instance_id}"
QUERY = "POST /open-apis/approval/v4/instances/query"


oa = sim_fixture("oa", "oa_faults", *RATE_LIMITS_OFF)


@pytest.fixture(autouse=True)
def _clean(oa: Sim) -> None:
    oa.reset(("POST", "/config", {"rate_limits": "off", "rate_limit_overrides": {}}))


@pytest.fixture(scope="module")
def applicant(oa: Sim) -> str:
    return str(oa.admin("GET", "/users")["users"][0]["user_id"])


@pytest.fixture(scope="module")
def busy_window(oa: Sim, applicant: str) -> tuple[int, int, list[str]]:
    """250 visit plans within one hour, 100 days ago (three pages of the listing)."""
    start = int(time.time() * 1000) - 100 * DAY
    codes = [
        oa.admin(
            "POST",
            "/act/submit",
            {
                "approval": "visit_plan",
                "user_id": applicant,
                "form": sample_widgets("visit_plan"),
                "start_time": start + n * 1000,
            },
        )["instance_code"]
        for n in range(250)
    ]
    return start, start + 3_600_000, codes


def instances_with_uuid(oa: Sim, uuid: str) -> list[str]:
    return [i["instance_code"] for i in oa.admin("GET", "/instances", params={"uuid": uuid})["items"]]


@pytest.mark.parametrize("kind", ["drop_after", "timeout"])
def test_create_whose_answer_is_lost_makes_exactly_one_instance(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, applicant: str, kind: str
) -> None:
    h = hook(oa, monkeypatch, read_timeout=0.5)
    uuid = f"ambiguous-{kind}"
    oa.fault(kind=kind, path="^/open-apis/approval/v4/instances$", method="POST", count=1, latency_ms=2000)
    code = h.create_instance(EXPENSE, applicant, sample_widgets("expense_claim"), uuid)
    assert instances_with_uuid(oa, uuid) == [code]
    assert oa.requests_to(CREATE) == 2
    assert oa.stats()["errors"].get("60012") == 1, "the retry met the committed instance"
    assert oa.requests_to(GET) == 1


@pytest.mark.parametrize(("kind", "status"), [("drop_before", 0), ("error", 500), ("error", 503)])
def test_create_retried_after_faults_before_the_write(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, applicant: str, kind: str, status: int
) -> None:
    h = hook(oa, monkeypatch)
    uuid = f"retry-{kind}-{status}"
    oa.fault(
        kind=kind, status=status or 500, path="^/open-apis/approval/v4/instances$", method="POST", count=2
    )
    code = h.create_instance(EXPENSE, applicant, sample_widgets("expense_claim"), uuid)
    assert instances_with_uuid(oa, uuid) == [code]
    assert oa.requests_to(CREATE) == 3


def test_429_on_query_waits_for_retry_after(
    oa: Sim,
    monkeypatch: pytest.MonkeyPatch,
    busy_window: tuple[int, int, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = hook(oa, monkeypatch)
    start, end, codes = busy_window
    oa.fault(kind="rate_limit", path="/instances/query$", count=2, retry_after=0.5)
    caplog.set_level(logging.WARNING, logger="bridge.hooks")
    began = time.monotonic()
    items = [i for p in h.query_instances(VISIT, start, end) for i in p]
    assert sorted(i["instance"]["code"] for i in items) == sorted(codes)
    waits = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"retrying in ([0-9.]+) s", r.getMessage()))
    ]
    assert len(waits) == 2
    assert min(waits) >= 0.5
    assert time.monotonic() - began >= 1.0


def test_feishu_frequency_limit_is_waited_out(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, busy_window: tuple[int, int, list[str]]
) -> None:
    oa.admin(
        "POST", "/config", {"rate_limits": "feishu", "rate_limit_overrides": {"instances.list": [[4, 1]]}}
    )
    h = hook(oa, monkeypatch)
    start, _, codes = busy_window
    began = time.monotonic()
    got = [c for p in h.iter_instance_codes(VISIT, start - 3 * DAY, start + 3_600_000) for c in p]
    assert sorted(got) == sorted(codes)
    assert oa.stats()["rate_limited"].get("instances.list", 0) >= 1
    assert time.monotonic() - began >= 1.0


def test_endless_429_gives_up_within_the_wait_budget(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(oa, monkeypatch, max_retry_wait=1.5)
    oa.fault(kind="rate_limit", path="/approvals/", retry_after=0.6)
    began = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        h.approval_definition(EXPENSE)
    assert info.value.code == "99991400"
    assert time.monotonic() - began < 2.5
    assert oa.requests_to("GET /open-apis/approval/v4/approvals/{approval_code}") in (2, 3)


def test_repeated_page_is_read_once(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, busy_window: tuple[int, int, list[str]]
) -> None:
    h = hook(oa, monkeypatch)
    start, end, codes = busy_window
    oa.fault(kind="repeat_page", path="^/open-apis/approval/v4/instances$", method="GET", count=1)
    got = [c for p in h.iter_instance_codes(VISIT, start, end) for c in p]
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(codes)
    assert oa.requests_to(LIST) == 4  # three pages and the repeat


@pytest.mark.parametrize(
    ("path", "method"), [("^/open-apis/approval/v4/instances$", "GET"), ("/instances/query$", "POST")]
)
def test_a_looping_cursor_ends_in_a_clear_error(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, busy_window: tuple[int, int, list[str]], path: str, method: str
) -> None:
    h = hook(oa, monkeypatch)
    start, end, _ = busy_window
    oa.fault(kind="loop_cursor", path=path, method=method)
    pages = (
        h.iter_instance_codes(VISIT, start, end) if method == "GET" else h.query_instances(VISIT, start, end)
    )
    began = time.monotonic()
    with pytest.raises(BadResponseError, match="cursor loops"):
        list(pages)
    assert time.monotonic() - began < 5
    assert oa.requests_to(LIST if method == "GET" else QUERY) <= 5


@PROXY_PAGES
def test_proxy_garbage_is_retried_a_bounded_number_of_times(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, kind: str, text: str
) -> None:
    h = hook(oa, monkeypatch)
    oa.fault(kind=kind, path="/approvals/", count=1)
    assert h.approval_definition(EXPENSE)["approval_name"] == "费用报销"
    oa.fault(kind=kind, path="/approvals/")
    with pytest.raises(BadResponseError, match=text):
        h.approval_definition(EXPENSE)
    assert oa.requests_to("GET /open-apis/approval/v4/approvals/{approval_code}") == 2 + 3


def test_oversized_answer_is_refused(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, busy_window: tuple[int, int, list[str]]
) -> None:
    h = hook(oa, monkeypatch)
    start, end, _ = busy_window
    oa.fault(kind="big_body", path="/instances/query$")
    began = time.monotonic()
    with pytest.raises(BadResponseError, match="cap"):
        list(h.query_instances(VISIT, start, end))
    assert time.monotonic() - began < 2
    assert oa.requests_to(QUERY) == 1
