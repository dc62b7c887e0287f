"""Each fault kind reaches a client as intended, and rules are deterministic with a seed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm  # noqa: F401

from sandbox.common.world import World

WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)
DEAL = WORLD.deal(4).id
DEAL_PATH = f"/crm/v3/objects/deals/{DEAL}"


@pytest.fixture(autouse=True)
def _clean(crm: Crm) -> Any:  # noqa: F811
    crm.reset()
    crm.login()
    yield
    crm.admin("DELETE", "/faults")


def _fault(crm: Crm, **rule: Any) -> None:  # noqa: F811
    crm.admin("POST", "/faults", rule)


def _amount(crm: Crm) -> str:  # noqa: F811
    return next(d for d in crm.dump("deals") if d["id"] == DEAL)["properties"]["amount"]


def test_latency_delays_the_answer(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="latency", path="^/crm/v3/objects/deals/\\d+$", latency_ms=400)
    started = time.perf_counter()
    assert crm.call("GET", DEAL_PATH).status_code == 200
    assert time.perf_counter() - started >= 0.4


def test_error_answers_the_status_with_hubspot_body_and_does_nothing(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="error", path=DEAL_PATH, method="PATCH", status=502)
    resp = crm.call("PATCH", DEAL_PATH, {"properties": {"amount": "1"}})
    assert resp.status_code == 502
    body = resp.json()
    assert body["status"] == "error"
    assert body["correlationId"]
    assert _amount(crm) != "1"


def test_rate_limit_storm_has_retry_after_and_429_body(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="rate_limit", path="/search", retry_after=2, count=3)
    codes = []
    for _ in range(4):
        resp = crm.search("deals", {"limit": 1})
        codes.append(resp.status_code)
        if resp.status_code == 429:
            assert resp.headers["Retry-After"] == "2"
            assert resp.json()["category"] == "RATE_LIMITS"
    assert codes == [429, 429, 429, 200]


def test_drop_before_breaks_the_connection_and_commits_nothing(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="drop_before", path=DEAL_PATH, method="PATCH", count=1)
    with pytest.raises(requests.exceptions.RequestException):
        crm.call("PATCH", DEAL_PATH, {"properties": {"amount": "111"}})
    assert _amount(crm) != "111"


def test_drop_after_commits_the_write_but_the_client_sees_a_broken_connection(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="drop_after", path=DEAL_PATH, method="PATCH", count=1)
    with pytest.raises(requests.exceptions.RequestException):
        crm.call("PATCH", DEAL_PATH, {"properties": {"amount": "222"}})
    assert _amount(crm) == "222"  # the ambiguous write
    assert crm.admin("GET", "/stats")["writes"]["deals"]["updated"] == 1


def test_timeout_commits_then_answers_too_late(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="timeout", path=DEAL_PATH, method="PATCH", latency_ms=1500, count=1)
    with pytest.raises(requests.exceptions.Timeout):
        crm.call("PATCH", DEAL_PATH, {"properties": {"amount": "333"}}, timeout=0.5)
    assert _amount(crm) == "333"


@pytest.mark.parametrize("kind", ["html_200", "malformed_json"])
def test_bodies_that_are_not_json(crm: Crm, kind: str) -> None:  # noqa: F811
    _fault(crm, kind=kind, path="/crm/v3/owners")
    resp = crm.call("GET", "/crm/v3/owners")
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        resp.json()
    if kind == "html_200":
        assert resp.headers["content-type"].startswith("text/html")


def test_big_body(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="big_body", path="/crm/v3/owners", size_bytes=300_000)
    resp = crm.call("GET", "/crm/v3/owners")
    assert len(resp.content) == 300_000


def test_count_and_rate_are_deterministic_with_a_seed(crm: Crm) -> None:  # noqa: F811
    def pattern() -> list[int]:
        crm.admin("PUT", "/faults", {"rules": [{"kind": "error", "path": "/crm/v3/owners", "rate": 0.5,
                                                "seed": 7, "status": 503}]})
        return [crm.call("GET", "/crm/v3/owners").status_code for _ in range(16)]

    first, second = pattern(), pattern()
    assert first == second
    assert {200, 503} == set(first)
    rules = crm.admin("GET", "/faults")["rules"]
    assert rules[0]["fired"] == first.count(503)
    assert rules[0]["seen"] == 16


def test_admin_paths_are_never_faulted(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="error", path=".*", status=500)
    assert crm.admin("GET", "/health")["status"] == "ok"


def _search_page(crm: Crm, after: str | None) -> dict[str, Any]:  # noqa: F811
    body: dict[str, Any] = {"limit": 50, "properties": ["dealname"],
                            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
    if after:
        body["after"] = after
    resp = crm.search("deals", body)
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


def test_repeat_page_serves_the_previous_page_again(crm: Crm) -> None:  # noqa: F811
    first = _search_page(crm, None)
    _fault(crm, kind="repeat_page", path="/crm/v3/objects/deals/search", count=1)
    second = _search_page(crm, first["paging"]["next"]["after"])
    assert second == first
    third = _search_page(crm, first["paging"]["next"]["after"])
    assert {r["id"] for r in third["results"]}.isdisjoint({r["id"] for r in first["results"]})


def test_loop_cursor_points_back(crm: Crm) -> None:  # noqa: F811
    first = _search_page(crm, None)
    after = first["paging"]["next"]["after"]
    _fault(crm, kind="loop_cursor", path="/search", count=1)
    second = _search_page(crm, after)
    assert second["paging"]["next"]["after"] == after  # back to the page just read
    _fault(crm, kind="loop_cursor", path="^/crm/v3/objects/deals$", count=1)
    listed = crm.ok("GET", "/crm/v3/objects/deals", params={"limit": 10, "after": WORLD.deal(20).id})
    assert listed["paging"]["next"]["after"] == WORLD.deal(20).id


def test_wrong_shape_breaks_one_record(crm: Crm) -> None:  # noqa: F811
    _fault(crm, kind="wrong_shape", path="/search", count=2, seed=3)
    for _ in range(2):
        page = _search_page(crm, None)
        broken = [r for r in page["results"] if not isinstance(r.get("properties"), dict)]
        assert len(broken) == 1
        assert "properties" not in broken[0] or isinstance(broken[0]["properties"], list)
        assert len(page["results"]) == 50  # the other records are intact
    healthy = _search_page(crm, None)
    assert all(isinstance(r["properties"], dict) for r in healthy["results"])
    assert crm.admin("GET", "/stats")["faults_fired"]["wrong_shape"] == 2
