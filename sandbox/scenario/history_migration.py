"""Demo around the ``history_migration`` DAG: the first thing the demo company does with the bridge.

``conf``: migrate everything, in chunks of 200 records, for real (dry run off and
the confirmation typed, as on the Params form; the demo
world is small: 200 customers, 400 contacts, 400 deals, 300 OA forms, 5 % dirty).
``after``: print what the run did — read, cleaned, merged, quarantined by
reason, linked, written back — and where its report is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select


def conf() -> dict[str, Any]:
    return {"chunk_size": 200, "dry_run": False, "confirm_load": "确认正式迁移"}


def after(sims: Any, demo_dir: Path) -> list[str]:
    """The run's totals, quarantine reasons and the report's path."""
    from bridge.hub import engine
    from bridge.hub.schema import migration_chunk, migration_run
    from bridge.hub.store import REASON_LABELS
    from bridge.migration.counts import EntityCounts

    hub = engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}")
    with hub.connect() as conn:
        run = conn.execute(select(migration_run).order_by(migration_run.c.started_at.desc()).limit(1)).first()
        if run is None:
            return ["历史迁移：中枢库中没有迁移记录（DAG 未写入）"]
        chunks = conn.execute(select(migration_chunk).where(migration_chunk.c.run_id == run.run_id)).all()
    c = run.counts or {}
    reasons = EntityCounts("all")
    for chunk in chunks:
        reasons.add(EntityCounts.from_stored(chunk.entity, chunk.counts))
    lines = [
        f"历史迁移 {run.run_id}：{'成功' if run.status == 'success' else run.status}，{len(chunks)} 个批次/步骤",
        f"读取 {c.get('read', 0)} 条，清洗 {c.get('cleaned', 0)} 条，合并重复客户 {c.get('merged', 0)} 条，"
        f"写入中枢库 {c.get('written', 0)} 条，关联 {c.get('linked', 0)} 条，回写商机 {c.get('written_back', 0)} 条",
        "隔离 " + (f"{c.get('quarantined', 0)} 条：" + "，".join(
            f"{REASON_LABELS.get(r, r)} {n}" for r, n in sorted(reasons.quarantined.items())) if reasons.quarantined
            else "0 条"),
    ]
    for label, stored in (("迁移报告", run.report_html), ("报告 CSV", run.report_csv)):
        path = demo_dir / stored if stored else None
        lines.append(f"{label}：{path}" + ("" if path and path.exists() else "（未生成）"))
    return lines
