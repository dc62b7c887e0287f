"""The report's charts as drawn: built from real marts (the staged company and an empty hub), inspected as figures.

Issue 14: 审批用时 was drawn as empty axes from −0.04 to 0.04 h; in the 30-day
chart the legend covered the tallest bar and the count axis had 0.25 ticks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

from bridge import dictionary as bridge_dictionary
from bridge import permissions
from bridge.hub import engine as hub_engine
from bridge.report import charts
from bridge.report.build import BuiltReport, ReportRequest, build_report
from bridge.report.model import Marts

from .conftest import BUILT_AT, REPORT_DAY

LEGEND_CHARTS = ("won_trend", "approval_cycle")


@pytest.fixture(scope="module")
def empty_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltReport]:
    """The report of a migrated hub with nothing in it: every chart has no data."""
    tmp = tmp_path_factory.mktemp("empty_report")
    url = f"sqlite:///{tmp / 'hub.sqlite'}"
    hub_engine.upgrade(url)
    engine = hub_engine.get_engine(url)
    yield build_report(engine, bridge_dictionary.load(), permissions.load(), ReportRequest(report_day=REPORT_DAY, owners={},
                       recipients=[], built_at=BUILT_AT, out_root=tmp / "out", run_id="empty"))
    engine.dispose()


def _plot_axes(fig: Figure) -> list[Axes]:
    return [ax for ax in fig.axes if ax.axison]


def _bars(fig: Figure) -> list[Rectangle]:
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]


def _line_points(fig: Figure) -> np.ndarray:
    points = [line.get_transform().transform(line.get_xydata()) for ax in fig.axes for line in ax.get_lines()]
    return np.concatenate(points) if points else np.empty((0, 2))


def _visible_ticks(ax: Axes) -> list[float]:
    low, high = ax.get_ylim()
    return [float(t) for t in ax.get_yticks() if low - 1e-9 <= t <= high + 1e-9]


@pytest.mark.parametrize("key", sorted(charts.SPECS))
def test_an_empty_chart_says_no_data_and_draws_no_axes(empty_report: BuiltReport, key: str) -> None:
    assert key in {k for s in empty_report.marts.sections for k in s.chart_keys}, "the section still shows the chart"
    with charts.drawn(key, empty_report.marts) as fig:
        [ax] = fig.axes  # no twin axis either
        assert [t.get_text() for t in ax.texts] == [charts.NO_DATA]
        assert not ax.axison
        assert list(ax.get_xticks()) == []
        assert list(ax.get_yticks()) == []
        assert len(ax.patches) == 0
        assert len(ax.get_lines()) == 0
        assert ax.get_title()  # still says what the chart is about


def test_the_empty_approval_chart_is_no_longer_a_zero_axis(empty_report: BuiltReport) -> None:
    cycle = empty_report.marts.table("approval_cycle").frame
    assert len(cycle) > 0, "the table lists the forms (nothing decided): the chart used to draw them at 0 h"
    assert cycle["median_hours"].isna().all()
    assert charts.chart("approval_cycle", empty_report.marts).png.startswith(b"\x89PNG")


@pytest.mark.parametrize("key", LEGEND_CHARTS)
def test_legends_sit_outside_the_plot_area_and_cover_no_data(built_report: BuiltReport, key: str) -> None:
    marts: Marts = built_report.marts
    with charts.drawn(key, marts) as fig:
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        [legend] = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        box: Bbox = legend.get_window_extent(renderer)
        bars = _bars(fig)
        assert bars, "the staged company has data for this chart"
        for bar in bars:
            assert not box.overlaps(bar.get_window_extent(renderer)), bar
        points = _line_points(fig)
        assert not any(box.contains(x, y) for x, y in points)
        for ax in _plot_axes(fig):
            assert box.y0 >= ax.get_window_extent(renderer).y1 - 0.5, "the legend is above the plot area"
            assert not box.overlaps(ax.title.get_window_extent(renderer)), "and under the title, not on it"


def test_the_30_day_chart_counts_in_whole_deals(built_report: BuiltReport) -> None:
    trend = built_report.marts.series["won_trend"]
    assert trend["new_deals"].max() > 0
    with charts.drawn("won_trend", built_report.marts) as fig:
        amounts, counts = fig.axes
        assert counts.get_ylabel() == "新增商机数"
        ticks = _visible_ticks(counts)
        assert len(ticks) >= 2
        assert all(t.is_integer() for t in ticks), ticks
        assert counts.get_ylim()[0] == 0
        assert counts.get_ylim()[1] >= trend["new_deals"].max()
        assert amounts.get_ylim()[0] == 0


@pytest.mark.parametrize("few", [1, 2, 3])
def test_a_count_axis_with_few_deals_still_has_integer_ticks(built_report: BuiltReport, few: int) -> None:
    trend = built_report.marts.series["won_trend"].copy()
    trend["new_deals"] = [few if i == 3 else 0 for i in range(len(trend))]  # the case that gave 0.25 steps
    with charts._style():
        fig = charts.won_trend_figure(trend)
        try:
            fig.canvas.draw()
            ticks = _visible_ticks(fig.axes[1])
        finally:
            charts.plt.close(fig)
    assert ticks
    assert all(t.is_integer() for t in ticks), ticks


def test_the_approval_chart_starts_at_zero_hours(built_report: BuiltReport) -> None:
    with charts.drawn("approval_cycle", built_report.marts) as fig:
        [ax] = fig.axes
        assert ax.get_ylim()[0] == 0
        forms = [t.get_text() for t in ax.get_xticklabels()]
    cycle = built_report.marts.table("approval_cycle").frame
    assert forms == [f for f, m in zip(cycle["form"], cycle["median_hours"], strict=True) if m == m]


def test_the_report_pngs_are_written(built_report: BuiltReport, tmp_path: Path) -> None:
    built = charts.build_charts(built_report.marts)
    assert set(built) == set(charts.SPECS)
    for key, chart in built.items():
        assert chart.png.startswith(b"\x89PNG"), key
        (tmp_path / f"{key}.png").write_bytes(chart.png)


def test_the_pipeline_counts_stay_inside_the_plot(built_report: BuiltReport) -> None:
    with charts.drawn("pipeline_stage", built_report.marts) as fig:
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        [ax] = fig.axes
        right = ax.get_window_extent(renderer).x1
        labels = [t for t in ax.texts if t.get_text().endswith("个")]
        assert len(labels) == len(built_report.marts.table("pipeline_stage").frame)
        assert all(t.get_window_extent(renderer).x1 <= right for t in labels)
