"""All data-health suites over a large hub: 1,000,000 deals (+ companies and contacts in proportion) in SQLite.

Stages the simulated company into a hub file the way the syncs do (canonical
records from ``Dictionary.from_crm`` / ``from_oa``, ``bridge.staging`` snapshot
rows, bulk-inserted for speed; the 立项申请 ⇄ deal xref links; a stale sync and a
quarantine backlog), then runs every suite in a fresh process and prints the
wall time per frame (build = stream + reduce, validate = GX + row detail),
the Data Docs time and the peak RSS of that process (staging not counted).
The staged hub is kept and reused while its parameters match (``--restage``
forces a new one). Proportions follow ``World``'s defaults: half as many
companies as deals, two contacts per company.

    .venv/bin/python bench/data_health.py                          # 1,000,000 deals, 500,000 companies, 1,000,000 contacts, 200,000 OA
    .venv/bin/python bench/data_health.py --deals 100000            # quicker
    .venv/bin/python bench/data_health.py --sample 100000           # data_health.max_rows_per_suite = 100,000
    .venv/bin/python bench/data_health.py --out bench/results/data_health.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench.staged_hub import CHUNK, SnapshotLoader, StagedRun, fresh_hub, peak_rss_mb, staging_arguments  # noqa: E402

NOW = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 2026-11-26 07:00 Asia/Shanghai
DAY = date(2026, 11, 26)
SEED = 20261126


def stage(db: Path, deals: int, companies: int, oa: int) -> dict[str, Any]:
    """Create and fill the hub file; returns counts and seconds."""
    from sqlalchemy import insert

    from bridge import dictionary as bridge_dictionary
    from bridge.context import RunContext
    from bridge.hub import store
    from bridge.hub.schema import xref
    from bridge.staging import snapshot_row
    from sandbox.common.world import APPROVAL_CODES, World
    from sandbox.scenario.data_health import OaDetails

    engine = fresh_hub(db)
    d = bridge_dictionary.load()
    world = World(seed=SEED, companies=companies, contacts_per_company=2, deals=deals, oa_instances=oa,
                  now_ms=int((NOW - timedelta(hours=1)).timestamp() * 1000))
    loader = SnapshotLoader(engine, NOW)
    loader.stage_crm(d, (("company", world.iter_companies()), ("contact", world.iter_contacts()),
                         ("deal", world.iter_deals())))

    details = OaDetails(world)
    form_of = {code: name for name, code in APPROVAL_CODES.items()}
    links: list[dict[str, Any]] = []
    for inst in world.iter_oa_instances():
        det = details.detail(inst)
        entity = form_of[det["approval_code"]]
        row = snapshot_row(d, entity, d.from_oa(entity, det))
        if row is None:
            continue
        loader.add("oa", entity, row)
        if entity == "project_initiation" and row.payload.get("deal_id"):
            links.append({"link_type": "deal_project", "crm_type": "deal", "crm_id": row.payload["deal_id"],
                          "oa_type": "project_initiation", "oa_id": row.source_id, "oa_uuid": inst.uuid,
                          "state": {"stage": "initiated"}, "dictionary_version": d.version, "created_at": NOW,
                          "updated_at": NOW, "run_id": "bench"})
    loader.flush_all()
    with engine.begin() as conn:
        seen: set[tuple[str, str]] = set()
        unique = [lk for lk in links if (lk["crm_id"], lk["oa_id"]) not in seen and not seen.add((lk["crm_id"], lk["oa_id"]))]  # type: ignore[func-returns-value]
        for start in range(0, len(unique), CHUNK):
            conn.execute(insert(xref), unique[start:start + CHUNK])
        ctx = RunContext(dag_id="bench", run_id="bench", task_id=None, try_number=None, principal="bench")
        for kind, ago in (("crm_to_oa", timedelta(minutes=3)), ("oa_to_crm", timedelta(hours=5))):
            pk = store.start_run(conn, ctx, kind, now=NOW - ago - timedelta(minutes=1))
            store.finish_run(conn, pk, "success", {}, now=NOW - ago)
        for i in range(300):
            store.quarantine_record(conn, ctx, store.QuarantineItem(
                "crm_to_oa", "crm", "deal", str(59_000_000_000 + i), "unmapped_value",
                "商机阶段值无法映射。", field="stage", department="sales", data_owner="70000001"),
                now=NOW - timedelta(hours=i))
    counts = loader.counts
    counts["deal_project_links"] = len(unique)
    print(f"  staged {sum(v for k, v in counts.items() if k in form_of.values()):,} "
          f"OA rows, {len(unique):,} links ({loader.elapsed():.0f} s)", flush=True)
    engine.dispose()
    return {"counts": counts, "seconds": round(loader.elapsed(), 1)}


def measure(db: Path, data_dir: Path, sample: int) -> dict[str, Any]:
    """Run every suite in this (fresh) process; wall time per frame and peak RSS."""
    base_start = time.perf_counter()
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from bridge import dictionary as bridge_dictionary
    from bridge.hub import engine as hub_engine
    from bridge.quality.config import HealthSettings
    from bridge.quality.gx import GxSession
    from bridge.quality.run import HealthOutput, run_checks

    GxSession()  # import GX outside the timed part (it takes seconds, once per process)
    import_seconds = time.perf_counter() - base_start
    rss_after_imports = peak_rss_mb()
    engine = hub_engine.get_engine(f"sqlite:///{db}")
    cfg = HealthSettings(max_rows_per_suite=sample)
    started = time.perf_counter()
    run = run_checks(engine, day=DAY, run_id="bench", now=NOW, dictionary=bridge_dictionary.load(), cfg=cfg,
                     output=HealthOutput(data_dir))
    wall = time.perf_counter() - started
    frames = [{"frame": c.frame, "total_rows": c.total_rows, "rows_validated": c.rows, "checks": c.checks,
               "build_s": c.build_seconds, "validate_s": c.validate_seconds, "sampled": c.sampled,
               "peak_rss_mb_so_far": c.peak_rss_mb} for c in run.costs]
    accounted = sum(c.build_seconds + c.validate_seconds for c in run.costs)
    return {
        "wall_seconds": round(wall, 1),
        "frames_seconds": round(accounted, 1),
        "docs_and_store_seconds": round(wall - accounted, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_after_imports_mb": round(rss_after_imports, 1),
        "import_seconds": round(import_seconds, 1),
        "checks": len(run.outcomes),
        "failed_checks": len(run.failing),
        "overall_score": run.overall,
        "sample": sample,
        "frames": frames,
        "data_docs": str(run.docs_index),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/data_health.py", description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--companies", type=int, help="default: deals / 2 (World's proportion)")
    parser.add_argument("--oa", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=0, help="data_health.max_rows_per_suite (0 = every row)")
    staging_arguments(parser, "data_health")
    parser.add_argument("--measure-only", type=Path, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)
    companies = args.companies if args.companies is not None else max(1, args.deals // 2)

    if args.measure_only:
        print(json.dumps(measure(args.measure_only, args.dir / "out", args.sample)))
        return 0

    db = args.dir / f"hub_{args.deals}_{companies}_{args.oa}.sqlite"
    command = " ".join(["bench/data_health.py", *(argv if argv is not None else sys.argv[1:])])
    return StagedRun(
        __file__, db,
        announce=f"staging {args.deals:,} deals, {companies:,} companies, {2 * companies:,} contacts, "
                 f"{args.oa:,} OA instances into {db}",
        stage=lambda: stage(db, args.deals, companies, args.oa),
        measuring="running every data-health suite in a fresh process ...",
        child_args=["--measure-only", str(db), "--dir", str(args.dir), "--sample", str(args.sample)],
    ).measure(args, {"command": command})


if __name__ == "__main__":
    raise SystemExit(main())
