"""The day's health summary for the UI page and the report: ``<data_dir>/data_health/<day>/summary.{json,html}``.

Built from the hub only (``health_score``, ``health_result``), so it can be
rebuilt at any time and on any worker. Staff-facing text is Chinese. Records
appear by id only; data owners by their CRM owner / OA user id.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from bridge.dictionary import Dictionary
from bridge.quality import config
from bridge.quality.checks import SYNC_LABELS, Check, all_checks, reason_label
from bridge.quality.scores import HealthResult, HealthScore, check_results, latest_scores, score_trend

SCOPE_LABELS = {"overall": "总体", "entity": "实体", "department": "责任部门", "data_owner": "数据责任人"}
EXAMPLES_SHOWN = 10


@dataclass(frozen=True)
class Labels:
    """Chinese names of checks, entities and departments (from the dictionary)."""

    checks: Mapping[str, Check]
    entities: Mapping[str, str]
    departments: Mapping[str, str]

    @classmethod
    def of(cls, d: Dictionary, cfg: config.HealthSettings | None = None) -> Labels:
        from bridge.hub.store import REASON_CODES

        checks = all_checks(d, cfg or config.HealthSettings(), REASON_CODES)
        entities = {name: e.label for name, e in d.entities.items()}
        entities.update({"sync": "同步时效", "quarantine": "隔离区", "calendar": "工作日历", "document": "文件", "attachment": "附件"})
        return cls({c.check_id: c for c in checks}, entities,
                   {k: dept.label for k, dept in d.departments.items()})

    def check(self, result: HealthResult) -> str:
        found = self.checks.get(result.check_id)
        if found is not None:
            return found.label
        if result.entity == "sync":
            return f"{SYNC_LABELS.get(result.field or '', result.field)} 同步时效"
        if result.entity == "quarantine":
            return f"隔离区积压：{reason_label(result.field or '')}"
        return result.check_id

    def fix(self, result: HealthResult) -> str:
        found = self.checks.get(result.check_id)
        return found.fix if found is not None else "请数据责任人按检查项核对并在源系统中修正。"

    def department(self, key: str | None) -> str:
        return self.departments.get(key or "", key or "—")

    def entity(self, key: str) -> str:
        return self.entities.get(key, key)


def summary_dir(data_dir: Path, day: date) -> Path:
    return data_dir / "data_health" / day.isoformat()


def build_summary(conn: Connection, d: Dictionary, day: date, *, cfg: config.HealthSettings | None = None,
                  trend_days: int = 30) -> dict[str, Any]:
    """The summary of ``day`` as JSON-ready data (scores, 30-day trend, failing checks)."""
    labels = Labels.of(d, cfg)
    scores = latest_scores(conn, day=day)
    results = check_results(conn, day)
    trend = score_trend(conn, days=trend_days, until=day)
    overall = next((s for s in scores if s.scope_type == "overall"), None)

    def score_row(s: HealthScore, label: str) -> dict[str, Any]:
        return {"scope": s.scope, "label": label, "score": s.score, "checks": s.checks,
                "failed_checks": s.failed_checks, "evaluated": s.evaluated, "failed_rows": s.failed_rows}

    return {
        "day": day.isoformat(),
        "run_id": overall.run_id if overall else None,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "overall": score_row(overall, "总体") if overall else None,
        "entities": [score_row(s, labels.entity(s.scope)) for s in scores if s.scope_type == "entity"],
        "departments": [score_row(s, labels.department(s.scope)) for s in scores if s.scope_type == "department"],
        "data_owners": [score_row(s, s.scope) for s in scores if s.scope_type == "data_owner"],
        "trend": [{"day": t.day.isoformat(), "score": t.score} for t in trend],
        "checks": len(results),
        "failing_checks": [
            {
                "check_id": r.check_id, "label": labels.check(r), "suite": r.suite, "entity": r.entity,
                "entity_label": labels.entity(r.entity), "field": r.field, "department": r.department,
                "department_label": labels.department(r.department), "evaluated": r.evaluated,
                "failed": r.failed, "failing_ids": r.failing_ids[:EXAMPLES_SHOWN],
                "failing_owners": dict(sorted(r.failing_owners.items(), key=lambda kv: -kv[1])[:EXAMPLES_SHOWN]),
                "fix": labels.fix(r),
            }
            for r in results if not r.success
        ],
        "data_docs": "data_docs/index.html",
    }


def _sparkline(points: Sequence[Mapping[str, Any]], width: int = 360, height: int = 60) -> str:
    if not points:
        return '<p class="muted">暂无趋势数据</p>'
    scores = [float(p["score"]) for p in points]
    low = min(min(scores), 90.0)
    span = max(100.0 - low, 1.0)
    step = width / max(1, len(scores) - 1)
    coords = " ".join(f"{i * step:.1f},{height - (s - low) / span * height:.1f}" for i, s in enumerate(scores))
    first, last = html.escape(str(points[0]["day"])), html.escape(str(points[-1]["day"]))
    return (f'<svg width="{width}" height="{height + 4}" role="img" aria-label="近30天总体评分">'
            f'<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{coords}"/></svg>'
            f'<div class="muted">{first} … {last}，最低 {min(scores):.1f}，最新 {scores[-1]:.1f}</div>')


def render_html(summary: Mapping[str, Any]) -> str:
    """The Chinese summary page (self-contained, no scripts)."""
    e = html.escape
    overall = summary.get("overall") or {}

    def table(rows: Sequence[Mapping[str, Any]], title: str) -> str:
        if not rows:
            return ""
        body = "".join(
            f"<tr><td>{e(str(r['label']))}</td><td class=num>{r['score']:.1f}</td><td class=num>{r['checks']}</td>"
            f"<td class=num>{r['failed_checks']}</td><td class=num>{r['failed_rows']}</td></tr>"
            for r in sorted(rows, key=lambda r: r["score"])
        )
        return (f"<h2>{e(title)}</h2><table><tr><th>范围</th><th>评分</th><th>检查项</th><th>未通过项</th>"
                f"<th>未通过记录</th></tr>{body}</table>")

    failing = "".join(
        f"<tr><td>{e(c['label'])}</td><td>{e(c['department_label'])}</td><td class=num>{c['failed']}/{c['evaluated']}</td>"
        f"<td class=ids>{e('、'.join(c['failing_ids']))}</td><td>{e(c['fix'])}</td></tr>"
        for c in summary.get("failing_checks") or []
    )
    failing_html = (
        "<h2>未通过的检查</h2><table><tr><th>检查项</th><th>责任部门</th><th>未通过/检查记录</th><th>示例记录编号</th>"
        f"<th>如何修正</th></tr>{failing}</table>" if failing else "<h2>未通过的检查</h2><p>今日全部检查通过。</p>"
    )
    score = overall.get("score")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>数据健康报告 {e(str(summary.get('day')))}</title>
<style>body{{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:24px;color:#222}}
table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
th{{background:#f3f4f6}}.num{{text-align:right}}.ids{{font-family:monospace;font-size:12px;max-width:360px}}
.big{{font-size:32px;font-weight:bold}}.muted{{color:#666;font-size:12px}}</style></head><body>
<h1>数据健康报告 · {e(str(summary.get('day')))}</h1>
<p>总体评分 <span class="big">{'—' if score is None else f'{score:.1f}'}</span> / 100 ·
检查项 {overall.get('checks', 0)} 项，未通过 {overall.get('failed_checks', 0)} 项，
未通过记录 {overall.get('failed_rows', 0)} 条</p>
<h2>近 30 天趋势</h2>{_sparkline(summary.get('trend') or [])}
{failing_html}
{table(summary.get('departments') or [], '各责任部门评分')}
{table(summary.get('entities') or [], '各实体评分')}
{table(summary.get('data_owners') or [], '各数据责任人评分（按 CRM 负责人 / OA 申请人编号）')}
<p class="muted">评分 = 各检查项通过率（通过记录 / 检查记录）的平均值 × 100。每项检查的明细见
<a href="../../{e(str(summary.get('data_docs')))}">Data Docs</a>；检查规则与修正方法见 docs/data_health.md。</p>
</body></html>
"""


def write_summary(conn: Connection, d: Dictionary, day: date, data_dir: Path,
                  cfg: config.HealthSettings | None = None) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.html`` of ``day``; returns both paths."""
    summary = build_summary(conn, d, day, cfg=cfg)
    folder = summary_dir(data_dir, day)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "summary.json", folder / "summary.html"
    tmp = folder / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(json_path)
    tmp = folder / "summary.html.tmp"
    tmp.write_text(render_html(summary), encoding="utf-8")
    tmp.replace(html_path)
    return json_path, html_path
