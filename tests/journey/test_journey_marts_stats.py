"""People × satisfaction, the pure parts: correlations and their Fisher-z intervals against SciPy and a hand
computation; the per-owner figures, the minimum number of answers, the groups and who may see a person's row."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.journey import people_csat as pc
from bridge.journey.stats import correlate, fisher_interval, pearson, ranks, spearman
from bridge.journey.view_settings import chain_above, reports_of

X = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
Y = [2.0, 1.0, 4.0, 3.0, 6.0, 5.0]


def test_stats_pearson_and_interval_match_a_hand_computation() -> None:
    # Hand: mean 3.5 both; deviation products 3.75, 3.75, −0.25, −0.25, 3.75, 3.75 → Sxy = 14.5;
    # Sxx = Syy = 17.5 → r = 29/35.
    r = pearson(X, Y)
    assert r == pytest.approx(29 / 35)
    z = 0.5 * math.log((1 + 29 / 35) / (1 - 29 / 35))  # atanh(r) = ½·ln((1+r)/(1−r)) = ½·ln(64/6)
    se = 1 / math.sqrt(6 - 3)
    low, high = fisher_interval(29 / 35, 6, method="pearson", level=0.95) or (None, None)
    assert low == pytest.approx(math.tanh(z - 1.959963984540054 * se))
    assert high == pytest.approx(math.tanh(z + 1.959963984540054 * se))
    assert low == pytest.approx(0.0519, abs=1e-4)
    assert high == pytest.approx(0.9807, abs=1e-4)


def test_stats_agree_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    x = [3.0, 4.0, 4.0, 5.0, 2.0, 5.0, 3.0, 4.0, 1.0, 5.0]
    y = [4.1, 4.4, 3.9, 4.8, 3.0, 4.6, 4.0, 4.2, 2.5, 4.9]
    assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y).statistic)
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)  # ties: average ranks
    ci = scipy_stats.pearsonr(x, y).confidence_interval(0.9)  # SciPy's is Fisher's z too
    low, high = fisher_interval(pearson(x, y) or 0.0, len(x), method="pearson", level=0.9) or (0.0, 0.0)
    assert (low, high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_stats_spearman_interval_uses_the_wider_rank_error() -> None:
    found = correlate(X, Y, method="spearman", level=0.95)
    assert found is not None
    assert found.n == 6
    z = math.atanh(found.r)
    se = math.sqrt(1.06 / 3)
    assert found.low == pytest.approx(math.tanh(z - 1.959963984540054 * se))
    assert found.high == pytest.approx(math.tanh(z + 1.959963984540054 * se))


def test_stats_refuse_what_cannot_be_computed() -> None:
    assert pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) is None  # a constant side
    assert correlate([1.0], [2.0]) is None
    three = correlate([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], method="pearson")
    assert three is not None
    assert three.low is None
    assert three.high is None
    assert ranks([10.0, 20.0, 20.0, 5.0]) == [2.0, 3.5, 3.5, 1.0]


@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=4, max_size=40))
def test_stats_interval_holds_the_coefficient(pairs: list[tuple[float, float]]) -> None:
    found = correlate([p[0] for p in pairs], [p[1] for p in pairs], method="pearson")
    if found is None:
        return
    assert -1.0 <= found.r <= 1.0
    assert found.low is not None
    assert found.high is not None
    assert -1.0 <= found.low <= found.r + 1e-9
    assert found.r - 1e-9 <= found.high <= 1.0


# ---------------------------------------------------------------- per owner and period
H1 = pc.Period(
    "2026H1", "2026 上半年", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 30, 23, 59, tzinfo=UTC)
)


def _answers(owner: str, kind: str, values: list[float], month: int = 3) -> list[pc.Answer]:
    return [pc.Answer(owner, kind, v, datetime(2026, month, 1 + i, tzinfo=UTC)) for i, v in enumerate(values)]


def test_people_owner_period_figures_and_minimum_answers() -> None:
    rules = pc.Rules(min_responses=3, min_group_size=5)
    answers = (
        _answers("o1", "CSAT", [4, 5, 3])
        + _answers("o1", "NPS", [10, 9, 3, 8])
        + _answers("o2", "CSAT", [5, 5])
        + _answers("o1", "CSAT", [1], month=8)
    )  # August: not in H1
    deals = [
        pc.DealFact("o1", "won", date(2026, 1, 10), date(2026, 2, 9)),
        pc.DealFact("o1", "won", date(2026, 3, 1), date(2026, 3, 21)),
        pc.DealFact("o1", "lost", date(2026, 2, 1), date(2026, 4, 1)),
        pc.DealFact("o1", "negotiation", date(2026, 2, 1), None),
        pc.DealFact("o1", "won", date(2025, 1, 1), date(2025, 12, 1)),
    ]  # closed before H1
    reviews = [
        pc.Review("o1", "2026H1", "A", None),
        pc.Review("o2", "2026H1", None, 3.5),
    ]  # no level: its score
    rows = {r.owner_id: r for r in pc.owner_periods(reviews, {"2026H1": H1}, answers, deals, rules)}
    o1, o2 = rows["o1"], rows["o2"]
    assert (o1.rating_points, o1.csat, o1.csat_responses, o1.nps_responses, o1.responses) == (
        4.0,
        4.0,
        3,
        4,
        7,
    )
    assert o1.nps == pytest.approx(100 * (2 - 1) / 4)  # 10, 9 promoters; 3 detractor; 8 passive
    assert (o1.won, o1.closed, o1.win_rate, o1.cycle_days) == (
        2,
        3,
        pytest.approx(2 / 3),
        25.0,
    )  # median(30, 20)
    assert o2.rating_points == 3.5
    assert o2.csat is None
    assert o2.csat_responses == 2


def _team(n: int, rules: pc.Rules) -> list[pc.OwnerPeriod]:
    reviews = [pc.Review(f"o{i}", "2026H1", "ABC"[i % 3], None) for i in range(n)]
    answers = [
        a for i in range(n) for a in _answers(f"o{i}", "CSAT", [3.0 + (i % 3) * 0.5] * (5 if i else 2))
    ]
    return pc.owner_periods(reviews, {"2026H1": H1}, answers, [], rules)


def test_people_correlation_leaves_out_owners_with_too_few_answers() -> None:
    rules = pc.Rules(min_responses=5, min_group_size=5, method="pearson")
    rows = _team(9, rules)
    csat = next(c for c in pc.team_correlations(rows, rules) if c.measure == "csat")
    assert (csat.people, csat.excluded, csat.responses) == (8, 1, 40)
    usable = [r for r in rows if r.csat is not None]
    expected = pearson([r.rating_points or 0 for r in usable], [r.csat or 0 for r in usable])
    assert csat.result is not None
    assert csat.result.r == pytest.approx(expected)
    nps = next(c for c in pc.team_correlations(rows, rules) if c.measure == "nps")
    assert nps.people == 0
    assert nps.result is None


def test_people_groups_never_show_fewer_than_the_minimum() -> None:
    rules = pc.Rules(min_responses=1, min_group_size=5)
    rows = _team(12, rules)  # levels A, B, C with 4 people each
    groups = pc.group_figures(rows, rules)
    assert [g.group for g in groups] == ["其他（各等级不足 5 人，合并）", "全体"]
    assert all(g.people >= 5 for g in groups)
    assert pc.group_figures(_team(4, rules), rules) == []  # a team of 4: nothing at all
    assert pc.suppressed_people(_team(4, rules), rules) == {"2026H1": 4}


def test_people_rows_only_for_every_person_roles_and_the_chain() -> None:
    managers = {"o1": "m1", "m1": "d1", "o2": "m2"}
    assert chain_above("o1", managers) == ["m1", "d1"]
    assert reports_of("d1", managers) == {"d1", "m1", "o1"}
    every = ["hr"]
    assert pc.may_see_person(pc.Viewer("hr", None), "o2", every, managers)
    assert pc.may_see_person(pc.Viewer("sales_manager", "d1"), "o1", every, managers)
    assert not pc.may_see_person(pc.Viewer("sales_manager", "d1"), "o2", every, managers)
    assert not pc.may_see_person(pc.Viewer("employee", "o1"), "o1", every, managers)  # not even oneself
    assert chain_above("a", {"a": "b", "b": "a"}) == ["b"]  # a loop stops


def test_facts_cache_reuses_within_its_time_and_recomputes_after() -> None:
    from bridge.journey.views import FactsCache

    calls: list[int] = []
    cache = FactsCache()

    def compute() -> int:
        calls.append(1)
        return len(calls)

    first, at = cache.get(("hub", "funnel"), 300, compute)
    again, at_again = cache.get(("hub", "funnel"), 300, compute)
    assert (first, again, at_again) == (1, 1, at)
    assert cache.get(("other-hub", "funnel"), 300, compute)[0] == 2  # per hub
    assert cache.get(("hub", "funnel"), 0, compute)[0] == 3  # 0 s: every view computes
