"""Charts of the report: matplotlib (Agg) with a CJK font, PNG bytes.

Chinese labels need a font that has the glyphs: Debian's ``fonts-noto-cjk``
("Noto Sans CJK SC"; ``scripts/system-deps.sh fonts`` installs it). Without
one the charts are still built (glyphs show as boxes), a warning is logged and
the report says so, rather than losing the whole report.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd
from matplotlib import font_manager
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bridge.report.model import Chart, Marts

log = logging.getLogger(__name__)

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC")
MISSING_FONT_NOTE = "图表中文字体缺失（请安装 fonts-noto-cjk），图中文字可能显示为方框。"
NO_DATA = "暂无数据"
COLORS = ["#1f5fa8", "#2e8b57", "#d9822b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b"]


def _find_cjk() -> tuple[str, str] | None:
    for family in CJK_FAMILIES:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        return family, path
    return None


def _add_system_cjk_fonts() -> int:
    """Register CJK font files installed after matplotlib cached its font list (its cache is not refreshed by
    itself: fonts-noto-cjk installed later would otherwise stay invisible)."""
    marks = ("cjk", "wqy", "sourcehan", "simhei", "yahei", "pingfang")
    added = 0
    for path in font_manager.findSystemFonts():
        if any(m in Path(path).name.lower() for m in marks):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
            added += 1
    return added


@lru_cache(maxsize=1)
def cjk_font() -> tuple[str, str] | None:
    """(family, file) of the first installed CJK font, or None."""
    found = _find_cjk()
    if found is None and _add_system_cjk_fonts():
        found = _find_cjk()
    if found is not None:
        return found
    log.warning("report charts: no CJK font found (tried %s); Chinese labels will not render. "
                "Install the Debian package fonts-noto-cjk (scripts/system-deps.sh fonts).", ", ".join(CJK_FAMILIES))
    return None


def missing_glyphs(text: Iterable[str], font_path: str) -> set[str]:
    """Characters of ``text`` the font file has no glyph for (checks the font's cmap)."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_path)
    chars = {c for t in text for c in t if not c.isspace()}
    return {c for c in chars if font.get_char_index(ord(c)) == 0}


@contextmanager
def _style() -> Iterator[None]:
    found = cjk_font()
    families = [found[0], "DejaVu Sans"] if found else ["DejaVu Sans"]
    with plt.rc_context({"font.family": "sans-serif", "font.sans-serif": families, "axes.unicode_minus": False,
                         "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100,
                         "axes.titlesize": 12, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9}):
        yield


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # logged once by cjk_font()
        fig.savefig(buf, format="png", bbox_inches="tight", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _wan(value: float) -> float:
    return value / 10_000.0


def _empty(fig: Figure, ax: Axes, title: str) -> Figure:
    """No data: the title and 暂无数据, no axes (an axis around nothing reads as a real zero)."""
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_axis_off()
    ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", fontsize=14, color="#7f8c8d")
    return fig


def _title_and_legend(ax: Axes, title: str, handles: list[Any], labels: list[str]) -> None:
    """The legend in one row just above the plot area, under the title: it can never cover a bar or a line."""
    ax.set_title(title, pad=20)  # room for the legend row
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=len(labels), fontsize=8,
              frameon=False, borderaxespad=0.0, handlelength=1.5)


def _day_axis(ax: Axes, days: Iterable[Any]) -> list[int]:
    """Positions 0…n-1 for the days, labelled m/d at about ten of them."""
    labels = [f"{d.month}/{d.day}" for d in days]
    x = list(range(len(labels)))
    step = max(1, len(labels) // 10)
    ax.set_xticks(x[::step], labels[::step])
    return x


def pipeline_figure(stage: pd.DataFrame) -> Figure:
    title = "销售漏斗：各阶段商机金额"
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if stage.empty or not (stage["amount"].fillna(0).any() or stage["deals"].fillna(0).any()):
        return _empty(fig, ax, title)
    frame = stage.iloc[::-1]
    amounts = [_wan(v) for v in frame["amount"].fillna(0)]
    bars = ax.barh(frame["stage"], amounts, color=COLORS[0])
    for bar, n in zip(bars, frame["deals"], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {int(n)} 个", va="center", fontsize=8)
    ax.set_xlim(0, max(amounts) * 1.12 or 1)  # room for the "n 个" labels right of the longest bar
    ax.set_xlabel("合同金额（万元）")
    ax.set_title(title)
    return fig


def won_trend_figure(trend: pd.DataFrame) -> Figure:
    title = "近30天每日赢单金额与新增商机"
    fig, ax = plt.subplots(figsize=(8, 3.4))
    if trend.empty or not (trend["won_amount"].any() or trend["new_deals"].any()):
        return _empty(fig, ax, title)
    x = _day_axis(ax, trend["day"])
    bars = ax.bar(x, [_wan(v) for v in trend["won_amount"]], color=COLORS[1])
    ax.set_ylabel("赢单金额（万元）")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    (line,) = ax2.plot(x, trend["new_deals"], color=COLORS[2], marker="o", markersize=3)
    ax2.set_ylabel("新增商机数")
    ax2.spines["top"].set_visible(False)
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count: 0, 1, 2 … never 0.25
    ax2.set_ylim(0, max(1, int(trend["new_deals"].max())) * 1.1)
    _title_and_legend(ax, title, [bars, line], ["赢单金额（万元）", "新增商机数"])
    return fig


def approval_figure(cycle: pd.DataFrame) -> Figure:
    title = "近30天审批用时"
    fig, ax = plt.subplots(figsize=(8, 3.4))
    frame = cycle[cycle["median_hours"].notna() | cycle["p90_hours"].notna()] if len(cycle) else cycle
    if frame.empty:
        return _empty(fig, ax, title)
    frame = frame.fillna({"median_hours": 0.0, "p90_hours": 0.0})
    x = list(range(len(frame)))
    median = ax.bar([i - 0.2 for i in x], frame["median_hours"], width=0.4, color=COLORS[0])
    p90 = ax.bar([i + 0.2 for i in x], frame["p90_hours"], width=0.4, color=COLORS[3])
    ax.set_xticks(x, list(frame["form"]))
    ax.set_ylabel("小时")
    ax.set_ylim(bottom=0)
    _title_and_legend(ax, title, [median, p90], ["中位数", "P90"])
    return fig


def health_figure(trend: pd.DataFrame) -> Figure:
    title = "近30天数据健康分（总体）"
    fig, ax = plt.subplots(figsize=(8, 2.8))
    if trend.empty or trend["score"].isna().all():  # no data-health run in the 30 days
        return _empty(fig, ax, title)
    x = _day_axis(ax, trend["day"])
    ax.plot(x, trend["score"].astype(float), color=COLORS[0], marker="o", markersize=3)
    ax.set_ylim(0, 100)
    ax.set_ylabel("健康分")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


@dataclass(frozen=True)
class _Spec:
    title: str
    alt: str
    draw: Callable[[Marts], Figure]


SPECS: dict[str, _Spec] = {
    "pipeline_stage": _Spec("销售漏斗", "各阶段商机金额（万元）与商机数",
                            lambda m: pipeline_figure(m.table("pipeline_stage").frame)),
    "won_trend": _Spec("赢单趋势", "近30天每日赢单金额（柱）与新增商机数（线）",
                       lambda m: won_trend_figure(m.series["won_trend"])),
    "approval_cycle": _Spec("审批周期", "各类审批用时中位数与 P90（小时）",
                            lambda m: approval_figure(m.table("approval_cycle").frame)),
    "health_trend": _Spec("数据健康趋势", "近30天总体数据健康分",
                          lambda m: health_figure(m.series["health_trend"])),
}


@contextmanager
def drawn(key: str, marts: Marts) -> Iterator[Figure]:
    """One chart's figure, drawn (artists laid out as in the PNG); closed on exit. For inspection in tests."""
    with _style():
        fig = SPECS[key].draw(marts)
        try:
            fig.canvas.draw()
            yield fig
        finally:
            plt.close(fig)


def chart(key: str, marts: Marts) -> Chart:
    spec = SPECS[key]
    with _style():
        return Chart(key, spec.title, _png(spec.draw(marts)), spec.alt)


def pipeline_chart(stage: pd.DataFrame) -> Chart:
    with _style():
        return Chart("pipeline_stage", "销售漏斗", _png(pipeline_figure(stage)), SPECS["pipeline_stage"].alt)


def build_charts(marts: Marts) -> dict[str, Chart]:
    """The charts the sections ask for; a chart whose table was left out is skipped."""
    wanted = [k for s in marts.sections for k in s.chart_keys]
    return {key: chart(key, marts) for key in wanted}


def chart_texts(marts: Marts) -> list[str]:
    """Every piece of text the charts draw (font coverage test)."""
    texts = ["销售漏斗：各阶段商机金额", "合同金额（万元）", " 个", "近30天每日赢单金额与新增商机", "赢单金额（万元）",
             "新增商机数", "近30天审批用时", "中位数", "小时", NO_DATA, "近30天数据健康分（总体）", "健康分"]
    try:
        texts += [str(s) for s in marts.table("pipeline_stage").frame["stage"]]
        texts += [str(s) for s in marts.table("approval_cycle").frame["form"]]
    except KeyError:
        pass
    return texts
