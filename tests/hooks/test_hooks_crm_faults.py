"""CrmHook against a misbehaving portal, over real HTTP: 429 storms, 5xx bursts, 4xx not retried, timeouts,
HTML pages with 200, malformed JSON, 10 MB bodies, and the ambiguous write."""

from __future__ import annotations

import logging
import re
import time

import pytest
from tests.hooks.hooks_support import PROXY_PAGES, RATE_LIMITS_OFF, SEEDED, Sim, sim_fixture
from tests.hooks.hooks_support import crm_hook as hook

from bridge.hooks.errors import (
    AmbiguousWriteError,
    BadRequestError,
    BadResponseError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
)

OWNERS = "GET /crm/v3/owners"
SEARCH = "POST /crm/v3/objects/deals/search"


crm = sim_fixture("crm", "crm_faults", *RATE_LIMITS_OFF, *SEEDED)


@pytest.fixture(autouse=True)
def _clean(crm: Sim) -> None:
    crm.reset(("PUT", "/ratelimits", {"enabled": False}))


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"retrying in ([0-9.]+) s", r.getMessage()))
    ]


def test_429_storm_waits_at_least_retry_after(
    crm: Sim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = hook(crm, monkeypatch)
    crm.fault(kind="rate_limit", path="/search$", count=3, retry_after=0.4)
    caplog.set_level(logging.WARNING, logger="bridge.hooks")
    started = time.monotonic()
    got = [o["id"] for p in h.iter_changed("deals", 0, ["dealname"]) for o in p]
    elapsed = time.monotonic() - started
    assert len(set(got)) == 400
    waits = retry_waits(caplog)
    assert len(waits) == 3
    assert all(w >= 0.4 for w in waits)
    assert elapsed >= 1.2
    assert crm.requests_to(SEARCH) == h.api_calls["POST /crm/v3/objects/{object_type}/search"]
    assert all(
        "RateLimitedError HTTP 429" in r.getMessage() for r in caplog.records if "retrying" in r.getMessage()
    )


def test_retry_after_beyond_the_wait_budget_fails_at_once(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch, max_retry_wait=2)
    crm.fault(kind="rate_limit", path="^/crm/v3/owners", retry_after=30)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        h.owners()
    assert time.monotonic() - started < 1.5
    assert info.value.retry_after == 30
    assert info.value.status == 429
    assert crm.requests_to(OWNERS) == 1


def test_hubspot_secondly_search_limit_is_waited_out(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    crm.admin("PUT", "/ratelimits", {"enabled": True, "search_per_s": 2, "burst": 1000})
    h = hook(crm, monkeypatch)
    started = time.monotonic()
    got = [o["id"] for p in h.iter_changed("deals", 0, ["dealname"], page_size=100) for o in p]
    assert len(set(got)) == 400
    stats = crm.stats()
    assert stats["rate_limited"].get("SECONDLY", 0) >= 1
    assert time.monotonic() - started >= 1.0


def test_5xx_burst_is_retried(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch)
    crm.fault(kind="error", status=503, path="^/crm/v3/owners", count=3)
    assert len(h.owners()) == 16
    assert crm.requests_to(OWNERS) == 4


def test_endless_5xx_gives_up_after_the_attempt_budget(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch, max_attempts=4)
    crm.fault(kind="error", status=500, path="^/crm/v3/owners")
    with pytest.raises(ServerError) as info:
        h.owners()
    assert info.value.status == 500
    assert info.value.correlation_id
    assert crm.requests_to(OWNERS) == 4


def test_a_400_is_not_retried(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch)
    crm.fault(kind="error", status=400, path="^/crm/v3/owners")
    with pytest.raises(BadRequestError) as info:
        h.owners()
    assert crm.requests_to(OWNERS) == 1
    err = info.value
    assert err.status == 400
    assert err.system == "crm"
    assert err.path == "/crm/v3/owners"
    assert err.correlation_id
    # A real refusal: an unknown property in a search sort.
    with pytest.raises(BadRequestError) as info:
        h.call(
            "POST",
            "/crm/v3/objects/{object_type}/search",
            path_params={"object_type": "deals"},
            json={"sorts": [{"propertyName": "no_such_property", "direction": "ASCENDING"}]},
        )
    assert "no_such_property" in info.value.message
    assert info.value.category == "VALIDATION_ERROR"
    assert crm.requests_to(SEARCH) == 1


def test_read_timeout_is_retried(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch, read_timeout=0.3)
    crm.fault(kind="timeout", path="^/crm/v3/owners", latency_ms=1500, count=1)
    started = time.monotonic()
    assert len(h.owners()) == 16
    assert time.monotonic() - started < 1.4, "the client must not wait for the slow answer"
    assert crm.requests_to(OWNERS) == 2


@PROXY_PAGES
def test_proxy_garbage_with_200_is_retried_then_refused(
    crm: Sim, monkeypatch: pytest.MonkeyPatch, kind: str, text: str
) -> None:
    h = hook(crm, monkeypatch)
    crm.fault(kind=kind, path="^/crm/v3/owners", count=1)
    assert len(h.owners()) == 16
    assert crm.requests_to(OWNERS) == 2
    crm.fault(kind=kind, path="^/crm/v3/owners")
    with pytest.raises(BadResponseError, match=text) as info:
        h.owners()
    assert info.value.status == 200
    assert crm.requests_to(OWNERS) == 2 + 3, "bounded: three attempts for a proxy page"


def test_a_10_mb_body_is_refused_without_reading_it(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hook(crm, monkeypatch)
    crm.fault(kind="big_body", path="^/crm/v3/owners", size_bytes=10 * 1024 * 1024)
    started = time.monotonic()
    with pytest.raises(BadResponseError, match="over the 5242880-byte cap") as info:
        h.owners()
    assert isinstance(info.value, PayloadTooLargeError)
    assert time.monotonic() - started < 2
    assert crm.requests_to(OWNERS) == 1


def test_lost_answer_of_a_create_is_ambiguous_and_not_resent(
    crm: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = hook(crm, monkeypatch)
    records = [{"dealname": f"模糊写入 {n}", "amount": "100"} for n in range(3)]
    crm.fault(kind="drop_after", path="/deals/batch/create$", count=1)
    with pytest.raises(AmbiguousWriteError) as info:
        h.batch_create("deals", records)
    err = info.value
    assert err.inputs == records
    assert err.outcomes == []
    assert err.pending == []
    assert crm.requests_to("POST /crm/v3/objects/deals/batch/create") == 1
    assert crm.stats()["writes"]["deals"]["created"] == 3, "the server did apply it: reconcile, never resend"
    assert "模糊写入" not in str(err)


def test_ambiguous_create_after_completed_chunks_keeps_their_outcomes(
    crm: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = hook(crm, monkeypatch)
    records = [{"dealname": f"分块 {n}"} for n in range(250)]
    # seed 10: the rule's first draw (0.57) spares chunk 1, its second (0.43) drops chunk 2's answer.
    crm.fault(kind="drop_after", path="/deals/batch/create$", count=1, rate=0.5, seed=10)
    with pytest.raises(AmbiguousWriteError) as info:
        h.batch_create("deals", records)
    err = info.value
    assert [o.status for o in err.outcomes] == ["created"] * 100
    assert err.inputs == records[100:200]
    assert err.pending == records[200:]
    assert crm.requests_to("POST /crm/v3/objects/deals/batch/create") == 2


def test_lost_answer_of_an_upsert_is_retried_and_writes_once(
    crm: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = hook(crm, monkeypatch)
    notes = [
        {
            "oa_instance_code": f"INST-AMB-{n}",
            "hs_timestamp": "2026-11-20T08:00:00.000Z",
            "hs_note_body": f"报销 {n}",
            "oa_activity_type": "expense_claim",
        }
        for n in range(3)
    ]
    crm.fault(kind="drop_after", path="/notes/batch/upsert$", count=1)
    outcomes = h.batch_upsert("notes", notes, "oa_instance_code")
    assert [o.key for o in outcomes] == [n["oa_instance_code"] for n in notes]
    assert all(o.ok and o.id for o in outcomes)
    assert {o.status for o in outcomes} == {"updated"}, "the retry found what the lost attempt created"
    assert crm.requests_to("POST /crm/v3/objects/notes/batch/upsert") == 2
    found = h.batch_read("notes", [n["oa_instance_code"] for n in notes], id_property="oa_instance_code")
    assert [o.status for o in found] == ["read"] * 3
    assert len({o.id for o in found}) == 3
    stored = crm.admin("GET", "/objects/notes", params={"limit": 10000})["results"]
    codes = [o["properties"].get("oa_instance_code") for o in stored]
    assert sorted(c for c in codes if c and c.startswith("INST-AMB-")) == [
        n["oa_instance_code"] for n in notes
    ]
