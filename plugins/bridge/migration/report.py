"""The migration report (迁移报告): an HTML page and a CSV, per run, under the run's folder.

Built from the hub alone (``migration_chunk`` counts and examples of every
chunk and step) plus the run's de-duplication decisions, so a report can be
rebuilt for any run. The HTML (Chinese, self-contained) is what the 历史迁移
page opens; the CSV (UTF-8 with BOM, for Excel) has the same figures in long
form plus every merge, for the data owners who merge the duplicates in the
CRM. Examples are masked with ``Policy.mask_all`` (phones, e-mails, credit
codes) and messages never quote masked values. Text a spreadsheet would run
as a formula is neutralised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge import settings
from bridge.dictionary import Dictionary
from bridge.dictionary.formats import SHANGHAI
from bridge.hub import store
from bridge.migration import dedupe, workdir
from bridge.migration.counts import EntityCounts, totals
from bridge.migration.params import ENTITY_LABELS, MigrationParams, ms_to_iso
from bridge.migration.runs import DEDUPE_STEP, STEPS, WRITEBACK_STEP, Chunk
from bridge.permissions import Policy

TEMPLATE = "report.html.j2"
MERGES_IN_HTML = 300
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
REASON_LABELS = store.REASON_LABELS  # one home for the quarantine reasons staff see
SKIP_LABELS = {
    "no_id": "缺少记录编号，无法导入",
    "read_twice": "同一批次中重复读到（分页期间被修改），只导入一次",
    "gone_before_read": "列出后、读取前已被删除",
    "malformed_source_record": "源系统返回的记录结构异常（已在任务日志中记录编号）",
    "already_in_crm": "CRM 中已是相同的值，无需回写",
    "deal_not_found": "回写时商机已不存在",
    "archived_in_crm": "CRM 中已删除（归档）的记录，按参数「CRM 中已删除的记录」= skip 未迁移",
    "merged_in_crm": "CRM 中已被合并掉的记录：不单独迁移，其编号映射到保留的记录（合并关系记入中枢库）",
    "left_to_sync": "CRM 中已删除、但已有立项申请关联的商机：由 CRM → OA 同步撤回或通知财务，迁移不处理",
}
METRICS = (
    ("read", "读取"),
    ("cleaned", "清洗"),
    ("merged", "合并"),
    ("quarantined", "隔离"),
    ("linked", "关联"),
    ("written", "写入中枢库"),
    ("written_back", "回写 CRM"),
    ("archived", "归档"),
    ("skipped", "跳过"),
)
STATUS_LABELS = {"success": "成功", "failed": "未完成（可清除失败的任务后续跑）", "running": "运行中"}


@dataclass
class Report:
    """Everything the two files show."""

    run_id: str
    params: MigrationParams
    status: str
    started_at: datetime | None
    finished_at: datetime
    entities: list[EntityCounts]
    merges: list[dedupe.Merge]
    chunks_total: int
    chunks_done: int
    unfinished: list[Chunk]
    customers_scanned: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return totals(self.entities)


def collect(
    run_id: str,
    params: MigrationParams,
    chunks: Sequence[Chunk],
    merges: Sequence[dedupe.Merge],
    status: str,
    started_at: datetime | None,
    finished_at: datetime,
) -> Report:
    """Sum the chunks per entity (steps included: the write-back counts under 商机)."""
    per_entity: dict[str, EntityCounts] = {e: EntityCounts(e) for e in params.entities}
    scanned = 0
    for c in chunks:
        if not c.done:
            continue
        if c.entity == DEDUPE_STEP:
            scanned = int((c.counts or {}).get("read", 0))
            continue
        entity = "deal" if c.entity == WRITEBACK_STEP else c.entity
        counts = EntityCounts.from_stored(entity, c.counts, c.examples)
        if c.entity == WRITEBACK_STEP:
            counts.read = 0  # the deals read back are not records migrated
        per_entity.setdefault(entity, EntityCounts(entity)).add(counts)
    data_chunks = [c for c in chunks if c.entity not in STEPS]
    unfinished = [c for c in chunks if not c.done]
    return Report(
        run_id=run_id,
        params=params,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        entities=[per_entity[e] for e in per_entity],
        merges=list(merges),
        chunks_total=len(data_chunks),
        chunks_done=sum(1 for c in data_chunks if c.done),
        unfinished=unfinished,
        customers_scanned=scanned,
    )


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _local(at: datetime | None) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if at else "—"


def _field_label(d: Dictionary, entity: str, name: str) -> str:
    e = d.entities.get(entity)
    f = e.fields.get(name) if e else None
    return f.label if f else name


def _masked_merges(policy: Policy, merges: Sequence[dedupe.Merge]) -> list[dict[str, Any]]:
    out = []
    for m in merges:
        kept = policy.mask_all("company", {"crm_id": m.kept_id, "name": m.kept_name, "uscc": m.kept_uscc})
        merged = policy.mask_all(
            "company", {"crm_id": m.merged_id, "name": m.merged_name, "uscc": m.merged_uscc}
        )
        out.append(
            {
                "kept_id": m.kept_id,
                "kept_name": kept.get("name"),
                "kept_uscc": kept.get("uscc"),
                "merged_id": m.merged_id,
                "merged_name": merged.get("name"),
                "merged_uscc": merged.get("uscc"),
                "rule": m.rule,
                "rule_label": dedupe.RULE_LABELS.get(m.rule, m.rule),
            }
        )
    return out


def _view(report: Report, d: Dictionary, policy: Policy) -> dict[str, Any]:
    p = report.params
    rows = []
    for c in report.entities:
        rows.append(
            {
                "entity": c.entity,
                "label": ENTITY_LABELS.get(c.entity, c.entity),
                "values": _metric_values(c),
                "quarantined": [(REASON_LABELS.get(r, r), r, n) for r, n in sorted(c.quarantined.items())],
                "skipped": [(SKIP_LABELS.get(r, r), r, n) for r, n in sorted(c.skipped.items())],
                "cleaned_fields": [
                    (_field_label(d, c.entity, f), f, n) for f, n in c.cleaned_fields.most_common()
                ],
                "unlinked": c.unlinked,
                "examples": {k: v for k, v in sorted(c.examples.items())},
            }
        )
    return {
        "r": report,
        "p": p,
        "rows": rows,
        "metrics": METRICS,
        "totals": report.totals,
        "entities_text": "、".join(ENTITY_LABELS.get(e, e) for e in p.entities),
        "range_crm": f"{ms_to_iso(p.crm_from_ms)} 至 {ms_to_iso(p.to_ms)}（不含）"
        if p.crm_from_ms
        else f"最早 至 {ms_to_iso(p.to_ms)}（不含）",
        "range_oa": f"{ms_to_iso(p.oa_from_ms)} 至 {ms_to_iso(p.to_ms)}（不含）",
        "archive_text": f"{p.archive_before}（之前最后修改的记录只登记为归档）"
        if p.archive_before
        else "不归档",
        "status_label": STATUS_LABELS.get(report.status, report.status),
        "started": _local(report.started_at),
        "finished": _local(report.finished_at),
        "merges": _masked_merges(policy, report.merges[:MERGES_IN_HTML]),
        "merges_total": len(report.merges),
        "merges_shown": min(len(report.merges), MERGES_IN_HTML),
        "reason_labels": REASON_LABELS,
        "skip_labels": SKIP_LABELS,
        "unfinished": [
            {
                "entity": ENTITY_LABELS.get(c.entity, c.entity),
                "chunk_no": c.chunk_no,
                "status": c.status,
                "error": (c.examples or {}).get("error") if c.status == "failed" else None,
            }
            for c in report.unfinished
        ],
    }


def render_html(report: Report, d: Dictionary, policy: Policy) -> str:
    import jinja2

    folder = settings.include_dir() / "templates" / "migration"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(**_view(report, d, policy))


def render_csv(report: Report, d: Dictionary, policy: Policy) -> str:
    """Long form: 部分, 实体, 项目, 细分, 数量, 记录编号, 说明 (one row per figure, merge or example)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["部分", "实体", "项目", "细分", "数量", "记录编号", "说明"])
    for values in _csv_rows(report, d, policy):
        writer.writerow([neutralise("" if v is None else v) for v in values])
    return "\ufeff" + buf.getvalue()


CsvRow = tuple[Any, ...]


def _csv_rows(report: Report, d: Dictionary, policy: Policy) -> Iterator[CsvRow]:
    mode = "试运行（未写入）" if report.params.dry_run else "正式迁移"
    status = STATUS_LABELS.get(report.status, report.status)
    yield ("运行", "", "运行编号", "", "", report.run_id, f"{mode}；状态：{status}")
    for name, label in METRICS:
        yield ("合计", "全部", label, "", report.totals.get(name, 0), "", "")
    for c in report.entities:
        yield from _entity_rows(c, d)
    for m in _masked_merges(policy, report.merges):
        yield (
            "客户合并",
            ENTITY_LABELS["company"],
            "合并",
            m["rule_label"],
            1,
            m["merged_id"],
            f"合并到 {m['kept_id']}（{m['kept_name'] or ''}）；被合并记录名称：{m['merged_name'] or ''}；"
            f"信用代码 {m['merged_uscc'] or '无'} / 保留记录信用代码 {m['kept_uscc'] or '无'}",
        )
    for chunk in report.unfinished:
        entity = ENTITY_LABELS.get(chunk.entity, chunk.entity)
        yield ("未完成批次", entity, "批次", str(chunk.chunk_no), "", "", chunk.status)


def _metric_values(c: EntityCounts) -> dict[str, int]:
    """An entity's figures by metric name (the keys of :data:`METRICS`)."""
    return {
        "read": c.read,
        "cleaned": c.cleaned,
        "merged": c.merged,
        "quarantined": c.quarantined_total,
        "linked": c.linked,
        "written": c.written,
        "written_back": c.written_back,
        "archived": c.archived,
        "skipped": c.skipped_total,
    }


def _entity_rows(c: EntityCounts, d: Dictionary) -> Iterator[CsvRow]:
    label = ENTITY_LABELS.get(c.entity, c.entity)
    values = _metric_values(c)
    for name, metric in METRICS:
        yield ("按实体", label, metric, "", values[name], "", "")
    for reason, n in sorted(c.quarantined.items()):
        yield ("隔离原因", label, "隔离", REASON_LABELS.get(reason, reason), n, "", reason)
    for reason, n in sorted(c.skipped.items()):
        yield ("跳过原因", label, "跳过", SKIP_LABELS.get(reason, reason), n, "", reason)
    for f, n in c.cleaned_fields.most_common():
        yield ("清洗字段", label, "清洗", _field_label(d, c.entity, f), n, "", f)
    for kind, items in sorted(c.examples.items()):
        for item in items:
            yield (
                "示例",
                label,
                kind,
                item.get("field") or "",
                "",
                item.get("id"),
                item.get("message") or "",
            )


def write(report: Report, d: Dictionary, policy: Policy, data_dir: Path | None = None) -> tuple[Path, Path]:
    """Write both files atomically into the run's folder; returns (html, csv)."""
    folder = workdir.run_dir(report.run_id, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, csv_path = folder / workdir.REPORT_HTML, folder / workdir.REPORT_CSV
    for path, text in (
        (html_path, render_html(report, d, policy)),
        (csv_path, render_csv(report, d, policy)),
    ):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return html_path, csv_path


def summary_counts(report: Report) -> dict[str, Any]:
    """``migration_run.counts``: the flat totals (the 历史迁移 page shows them)."""
    return dict(report.totals)
