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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd
from matplotlib import font_manager
from matplotlib import pyplot as plt

from bridge.report.model import Chart, Marts

log = logging.getLogger(__name__)

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC")
MISSING_FONT_NOTE = "图表中文字体缺失（请安装 fonts-noto-cjk），图中文字可能显示为方框。"
COLORS = ["#1f5fa8", "#2e8b57", "#d9822b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b"]


@lru_cache(maxsize=1)
def cjk_font() -> tuple[str, str] | None:
    """(family, file) of the first installed CJK font, or None."""
    for family in CJK_FAMILIES:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        return family, path
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


def pipeline_chart(stage: pd.DataFrame) -> Chart:
    frame = stage.iloc[::-1]
    with _style():
        fig, ax = plt.subplots(figsize=(8, 3.8))
        bars = ax.barh(frame["stage"], [_wan(v) for v in frame["amount"]], color=COLORS[0])
        for bar, n in zip(bars, frame["deals"], strict=True):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {int(n)} 个", va="center", fontsize=8)
        ax.set_xlabel("合同金额（万元）")
        ax.set_title("销售漏斗：各阶段商机金额")
        return Chart("pipeline_stage", "销售漏斗", _png(fig), "各阶段商机金额（万元）与商机数")


def won_trend_chart(trend: pd.DataFrame) -> Chart:
    with _style():
        fig, ax = plt.subplots(figsize=(8, 3.2))
        labels = [f"{d.month}/{d.day}" for d in trend["day"]]
        x = list(range(len(labels)))
        ax.bar(x, [_wan(v) for v in trend["won_amount"]], color=COLORS[1], label="赢单金额（万元）")
        ax.set_ylabel("赢单金额（万元）")
        ax2 = ax.twinx()
        ax2.plot(x, trend["new_deals"], color=COLORS[2], marker="o", markersize=3, label="新增商机数")
        ax2.set_ylabel("新增商机数")
        ax2.spines["top"].set_visible(False)
        step = max(1, len(labels) // 10)
        ax.set_xticks(x[::step], labels[::step])
        ax.set_title("近30天每日赢单金额与新增商机")
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles, ["赢单金额（万元）", "新增商机数"], loc="upper left", fontsize=8, frameon=False)
        return Chart("won_trend", "赢单趋势", _png(fig), "近30天每日赢单金额（柱）与新增商机数（线）")


def approval_chart(cycle: pd.DataFrame) -> Chart:
    frame = cycle.fillna({"median_hours": 0.0, "p90_hours": 0.0})
    with _style():
        fig, ax = plt.subplots(figsize=(8, 3.2))
        x = range(len(frame))
        ax.bar([i - 0.2 for i in x], frame["median_hours"], width=0.4, color=COLORS[0], label="中位数")
        ax.bar([i + 0.2 for i in x], frame["p90_hours"], width=0.4, color=COLORS[3], label="P90")
        ax.set_xticks(list(x), list(frame["form"]))
        ax.set_ylabel("小时")
        ax.set_title("近30天审批用时")
        ax.legend(fontsize=8, frameon=False)
        return Chart("approval_cycle", "审批周期", _png(fig), "各类审批用时中位数与 P90（小时）")


def health_chart(trend: pd.DataFrame) -> Chart:
    with _style():
        fig, ax = plt.subplots(figsize=(8, 2.8))
        labels = [f"{d.month}/{d.day}" for d in trend["day"]]
        x = list(range(len(labels)))
        ax.plot(x, trend["score"].astype(float), color=COLORS[0], marker="o", markersize=3)
        ax.set_ylim(0, 100)
        ax.set_ylabel("健康分")
        step = max(1, len(labels) // 10)
        ax.set_xticks(x[::step], labels[::step])
        ax.set_title("近30天数据健康分（总体）")
        ax.grid(axis="y", alpha=0.3)
        return Chart("health_trend", "数据健康趋势", _png(fig), "近30天总体数据健康分")


def build_charts(marts: Marts) -> dict[str, Chart]:
    """The charts the sections ask for; a chart whose table was left out is skipped."""
    charts: dict[str, Chart] = {}
    wanted = {k for s in marts.sections for k in s.chart_keys}
    makers = {
        "pipeline_stage": lambda: pipeline_chart(marts.table("pipeline_stage").frame),
        "won_trend": lambda: won_trend_chart(marts.series["won_trend"]),
        "approval_cycle": lambda: approval_chart(marts.table("approval_cycle").frame),
        "health_trend": lambda: health_chart(marts.series["health_trend"]),
    }
    for key in wanted:
        charts[key] = makers[key]()
    return charts


def chart_texts(marts: Marts) -> list[str]:
    """Every piece of text the charts draw (font coverage test)."""
    texts = ["销售漏斗：各阶段商机金额", "合同金额（万元）", " 个", "近30天每日赢单金额与新增商机", "赢单金额（万元）",
             "新增商机数", "近30天审批用时", "中位数", "小时", "近30天数据健康分（总体）", "健康分"]
    try:
        texts += [str(s) for s in marts.table("pipeline_stage").frame["stage"]]
        texts += [str(s) for s in marts.table("approval_cycle").frame["form"]]
    except KeyError:
        pass
    return texts
