"""OaHook's performance reads over the OA simulator (real HTTP): the review periods, each rated person's
result per ended period as the simulator's seed draws it, paging over the reviewees, refusals as the hook's
error types — and the pure decoders of bridge.hooks.feishu_performance."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from tests.hooks.hooks_support import (
    RATE_LIMITS_OFF,
    SEEDED,
    Sim,
    connection,
    oa_conn,
    oa_hook,
    sim_fixture,
)

from bridge.hooks import feishu_performance as perf
from bridge.hooks.errors import AuthError, BadRequestError, NotFoundError
from bridge.hooks.oa import OaHook
from sandbox.oa import performance as sim_perf

REVIEWEES = f"POST {perf.REVIEWEES}"
RESULTS = f"POST {perf.REVIEW_DATAS}"

oa = sim_fixture("oa", "oa_performance", *RATE_LIMITS_OFF, *SEEDED)


@pytest.fixture
def hook(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> OaHook:
    """A hook on a fresh Connection; the simulator's tokens restored and its counters at zero."""
    oa.reset(("POST", "/tokens/restore", None))
    return oa_hook(oa, monkeypatch)


@pytest.fixture(scope="module")
def rated(oa: Sim) -> list[dict[str, Any]]:
    """The people the simulator rates (its roles), by user id."""
    users: list[dict[str, Any]] = oa.admin("GET", "/users")["users"]
    return sorted((u for u in users if u["role"] in sim_perf.RATED_ROLES), key=lambda u: str(u["user_id"]))


@pytest.fixture(scope="module")
def world_seed(oa: Sim) -> str:
    return str(oa.admin("GET", "/health")["world_seed"])


def sim_now(oa: Sim) -> int:
    """The simulator's clock (results exist only for periods that ended by it)."""
    return int(time.time() * 1000) + int(oa.admin("GET", "/health")["clock_offset_ms"] or 0)


def ended_periods(hook: OaHook, oa: Sim) -> list[perf.ReviewPeriod]:
    now_ms = sim_now(oa)
    return [p for p in hook.performance_semesters() if p.end_ms is not None and p.end_ms < now_ms]


def test_review_periods_are_the_four_halves(hook: OaHook) -> None:
    periods = hook.performance_semesters()
    assert [(p.id, p.year, p.period_type, p.name) for p in periods] == [
        (s.id, s.year, s.type, s.name_zh) for s in sim_perf.semesters()
    ]
    assert all(p.start_ms is not None and p.end_ms is not None and p.start_ms < p.end_ms for p in periods)
    assert hook.api_calls[f"GET {perf.SEMESTERS}"] == 1


def test_results_of_every_ended_period_as_seeded_over_several_pages(
    oa: Sim, hook: OaHook, rated: list[dict[str, Any]], world_seed: str
) -> None:
    periods = ended_periods(hook, oa)
    assert periods
    for period in periods:
        pages = list(hook.iter_review_results(period.id, page_size=7))
        assert [len(p) for p in pages] == [min(7, len(rated) - n) for n in range(0, len(rated), 7)]
        results = {r.user_id: r for page in pages for r in page}
        assert list(results) == [u["user_id"] for u in rated]
        for user in rated:
            _option, label, name_zh, score, _w = sim_perf._rating(world_seed, user["user_id"], period.id)
            got = results[user["user_id"]]
            assert (got.period_id, got.rating, got.rating_name, got.score) == (
                period.id,
                label,
                name_zh,
                Decimal(score),
            )
            assert got.stage == "communication_and_open_result"
            assert got.reviewer_user_id
    calls = -(-len(rated) // 7)  # pages of 7 people
    assert hook.api_calls[REVIEWEES] == hook.api_calls[RESULTS] == calls * len(periods)


def test_results_of_some_people_and_of_a_period_not_ended(
    oa: Sim, hook: OaHook, rated: list[dict[str, Any]]
) -> None:
    period = ended_periods(hook, oa)[0]
    wanted = [rated[0]["user_id"], rated[-1]["user_id"]]
    results = [r for page in hook.iter_review_results(period.id, user_ids=wanted) for r in page]
    assert sorted(r.user_id for r in results) == sorted(wanted)
    future = [p for p in hook.performance_semesters() if p.end_ms is not None and p.end_ms >= sim_now(oa)]
    for period in future:
        assert list(hook.iter_review_results(period.id)) == []


def test_unknown_period_is_not_found_and_a_bad_page_size_a_bad_request(hook: OaHook) -> None:
    with pytest.raises(NotFoundError) as info:
        next(hook.iter_review_results("1"))
    assert info.value.code == perf.UNKNOWN_SEMESTER
    with pytest.raises(BadRequestError):
        next(hook.iter_review_results(sim_perf.semesters()[0].id, page_size=0))


def test_refused_credentials_are_an_auth_error(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = connection(monkeypatch, {**oa_conn(oa.url, max_attempts=1), "password": "wrong-secret"})
    hook = OaHook(conn_id)
    with pytest.raises(AuthError):
        hook.performance_semesters()
    with pytest.raises(AuthError):
        next(hook.iter_review_results(sim_perf.semesters()[0].id))


# ------------------------------------------------------------------ pure decoding
def test_period_decoding() -> None:
    period = perf.period_of(
        {
            "id": "7",
            "year": 2026,
            "type": "H1",
            "name": {"zh_cn": "上半年"},
            "start_time": "10",
            "end_time": 20,
        }
    )
    assert period == perf.ReviewPeriod("7", 2026, "H1", "上半年", 10, 20)
    odd = perf.period_of({"id": "8", "year": "2026", "name": "年度", "start_time": "soon"})
    assert (odd.year, odd.name, odd.start_ms, odd.end_ms) == (None, "年度", None, None)


def test_review_result_takes_the_opened_result_else_the_leader_review() -> None:
    names = perf.option_names(
        {
            "indicators": [
                {
                    "options": [
                        {"id": "o1", "name": {"zh-CN": "优秀"}},
                        {"id": "o2", "name": {"zh-CN": "良好"}},
                    ]
                }
            ]
        }
    )
    assert names == {"o1": "优秀", "o2": "良好"}

    def stage(kind: str, option: str, label: str) -> dict[str, Any]:
        entry = {
            "option_id": option,
            "text": label,
            "score": "85",
            "submit_time": "5",
            "reviewer_user_id": {},
        }
        return {"stage_type": kind, "data": [entry]}

    item = {
        "user_id": {"user_id": "u1"},
        "semester_id": "s1",
        "stages": [stage("leader_review", "o2", "B"), stage("communication_and_open_result", "o1", "A")],
    }
    result = perf.review_result_of(item, names)
    assert result == perf.ReviewResult(
        "u1", "s1", None, "communication_and_open_result", "A", "优秀", Decimal(85), None, 5
    )
    only_leader = perf.review_result_of({**item, "stages": [stage("leader_review", "o2", "B")]}, names)
    assert only_leader is not None
    assert (only_leader.stage, only_leader.rating, only_leader.rating_name) == ("leader_review", "B", "良好")
    assert (
        perf.review_result_of({**item, "stages": [{"stage_type": "leader_review", "data": []}]}, names)
        is None
    )
    assert perf.reviewee_id_of({"reviewee_user_id": {"user_id": "u9"}}) == "u9"
    assert perf.reviewee_id_of({"reviewee_user_id": None}) is None
