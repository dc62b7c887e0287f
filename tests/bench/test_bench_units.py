"""The pure parts of make bench: the day plan of the latency scenario, the settings arithmetic, goals, table."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.common import Figure, Goal, Scenario, _width, percentile, table
from bench.latency import QUALIFY_STAGE, plan_day, worst_case_seconds
from hypothesis import given
from hypothesis import strategies as st

START, END = 1_795_700_000_000, 1_795_700_000_000 + 9 * 3600_000
ELIGIBLE = [str(50_000_000_000 + i) for i in range(400)]
OTHERS = [str(60_000_000_000 + i) for i in range(400)]


def _plan(seed: int = 7):
    return plan_day(ELIGIBLE, OTHERS, START, END, qualifying=120, burst=30, repeated=100, notes=50, seed=seed)


def test_plan_day_is_repeatable_and_differs_by_seed() -> None:
    assert _plan(7) == _plan(7)
    assert _plan(7).edits != _plan(8).edits


def test_plan_day_each_qualifying_deal_reaches_the_stage_first_at_its_recorded_instant() -> None:
    plan = _plan()
    assert len(plan.qualify_at) == 150
    assert set(plan.kind_of.values()) == {"single", "edited_on", "burst"}
    first_edit: dict[str, int] = {}
    for edit in plan.edits:
        first_edit.setdefault(edit.deal_id, edit.at_ms)
        if edit.deal_id in plan.qualify_at and edit.properties.get("dealstage") == QUALIFY_STAGE:
            assert edit.at_ms == plan.qualify_at[edit.deal_id]
    for deal, at in plan.qualify_at.items():
        assert first_edit[deal] == at, "nothing touches a qualifying deal before it reaches the stage"
        assert START <= at < END
    assert [e.at_ms for e in plan.edits] == sorted(e.at_ms for e in plan.edits)


def test_plan_day_burst_lands_in_one_minute_and_other_edits_never_qualify() -> None:
    plan = _plan()
    burst = [plan.qualify_at[d] for d, k in plan.kind_of.items() if k == "burst"]
    assert len(burst) == 30
    assert max(burst) - min(burst) < 60_000
    assert not plan.untouched_for_oa & set(plan.qualify_at)
    for edit in plan.edits:
        if edit.kind in ("repeated", "notes"):
            assert edit.deal_id in plan.untouched_for_oa
            assert "dealstage" not in edit.properties
        if edit.kind == "notes":
            assert set(edit.properties) == {"description"}
    repeated = {e.deal_id for e in plan.edits if e.kind == "repeated"}
    assert len(repeated) == 100


def test_plan_day_refuses_more_deals_than_it_has() -> None:
    with pytest.raises(ValueError, match="can reach the stage"):
        plan_day(ELIGIBLE[:10], OTHERS, START, END, qualifying=10, burst=1, repeated=0, notes=0, seed=1)


def test_worst_case_is_the_documented_arithmetic() -> None:
    worst = worst_case_seconds(60, 60, 150, 12.5)
    assert worst == {"single_edit_s": 192.5, "edited_without_pause_s": 282.5}


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200), st.integers(1, 100))
def test_percentile_is_a_value_with_at_least_q_percent_at_or_below(values: list[float], q: int) -> None:
    p = percentile(values, q)
    assert p in values
    assert sum(1 for v in values if v <= p) >= q / 100 * len(values)
    assert sum(1 for v in values if v < p) < q / 100 * len(values)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 95) is None


def test_figure_ratio_and_goal() -> None:
    f = Figure("wall time", 60.0, "s", floor=40.0, goal=Goal("ratio", "<=", 1.5))
    assert f.ratio == 1.5
    assert f.met is True
    g = Figure("wall time", 61.0, "s", floor=40.0, goal=Goal("ratio", "<=", 1.5))
    assert g.met is False
    assert Figure("p95", 301, "s", goal=Goal("value", "<=", 300)).met is False
    assert Figure("writes", 1000, goal=Goal("value", "==", 1000)).met is True
    assert Figure("missing", None, goal=Goal("value", "==", 0)).met is None
    assert g.as_dict()["goal"] == "≤ 1.5× floor"
    faster = Figure("bridge ÷ dlt speed", 3.2, "×", goal=Goal("value", ">=", 3.0))
    assert faster.met is True
    assert Figure("bridge ÷ dlt speed", 2.9, "×", goal=Goal("value", ">=", 3.0)).met is False
    assert faster.as_dict()["goal"] == "≥ 3 ×"


def test_table_aligns_columns_with_chinese_names() -> None:
    s = Scenario("1", "sync")
    s.add("立项申请 created", 10_000, floor=10_000, goal=Goal("value", "==", 10_000))
    s.add("wall time", 43.9, "s", floor=37.2, goal=Goal("ratio", "<=", 1.5))
    missing = Scenario("4", "history migration", status="not available", reason="bench/history_migration.py missing")
    lines = table([s, missing]).splitlines()
    header = lines[0]
    value_col = _width(header[:header.index("value")])
    for line in lines[2:4]:
        cut = 0
        while _width(line[:cut]) < value_col:
            cut += 1
        assert line[cut - 2:cut] == "  ", line
        assert line[cut] != " ", line
    assert "not available" in lines[4]
    assert "bench/history_migration.py missing" in lines[4]
    assert "1.18×" in lines[3]
    assert "yes" in lines[3]


def test_bench_package_has_the_entry_points_make_bench_needs() -> None:
    root = Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text()
    assert "python -m bench.run $(BENCH_ARGS)" in makefile
    assert "scripts/bench-env.sh" in makefile  # the dlt readers' own environment, never .venv
    assert "dlt" not in (root / "requirements.txt").read_text() + (root / "constraints.txt").read_text()
    from bench import run

    assert set(run.TITLES) == {"1", "2", "3", "4", "5", "6", "7", "8"}
