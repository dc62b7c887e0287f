"""The daily report over a large hub: 1,000,000 deals and 200,000 OA instances in SQLite.

Stages the simulated company into a hub file the way the syncs do (canonical
records from ``Dictionary.from_crm`` / ``from_oa``, ``bridge.staging``
snapshot rows), bulk-inserted for speed, then builds the report in a fresh
process and prints its wall time per phase and peak RSS (the staging's
memory is not counted). The staged hub is kept and reused while its
parameters match (``--restage`` forces a new one).

    .venv/bin/python bench/daily_report.py                                  # 1,000,000 deals, 200,000 OA instances
    .venv/bin/python bench/daily_report.py --deals 100000 --oa 20000         # quicker
    .venv/bin/python bench/daily_report.py --out bench/results/daily_report.json
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

from bench.staged_hub import SnapshotLoader, StagedRun, fresh_hub, peak_rss_mb, staging_arguments  # noqa: E402

NOW = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)  # 2026-11-26 00:30 Asia/Shanghai
REPORT_DAY = date(2026, 11, 26)
SEED = 20261126


def stage(db: Path, deals: int, oa: int, companies: int) -> dict[str, Any]:
    """Create and fill the hub file; returns counts and seconds."""
    from bridge import dictionary as bridge_dictionary
    from bridge.staging import snapshot_row
    from sandbox.common.world import APPROVAL_CODES, World
    from sandbox.oa.definitions import load_definitions
    from sandbox.oa.history import detail
    from sandbox.oa.seed import instance_row, people_rows

    engine = fresh_hub(db)
    d = bridge_dictionary.load()
    world = World(seed=SEED, companies=companies, deals=deals, oa_instances=oa, now_ms=int(NOW.timestamp() * 1000))
    loader = SnapshotLoader(engine, NOW)
    loader.stage_crm(d, (("company", world.iter_companies()), ("deal", world.iter_deals())))

    definitions = load_definitions()
    users, _ = people_rows(world)
    people = {u["user_id"]: u for u in users}
    form_of = {code: name for name, code in APPROVAL_CODES.items()}
    for inst in world.iter_oa_instances():
        row_in = instance_row(inst)
        entity = form_of[row_in["approval_code"]]
        det = detail(row_in, definitions[row_in["approval_code"]], people)
        loader.add("oa", entity, snapshot_row(d, entity, d.from_oa(entity, det)))
    loader.flush_all()
    counts = loader.counts
    print(f"  staged {sum(v for k, v in counts.items() if k not in ('company', 'deal')):,} OA instances "
          f"({loader.elapsed():.0f} s)", flush=True)
    engine.dispose()
    return {"counts": counts, "seconds": round(loader.elapsed(), 1)}


def build(db: Path, out: Path) -> dict[str, Any]:
    """Build the report in this (fresh) process; wall time per phase and peak RSS."""
    base_start = time.perf_counter()
    import matplotlib  # noqa: F401
    import pandas  # noqa: F401

    from bridge import dictionary as bridge_dictionary
    from bridge import permissions
    from bridge.hub import engine as hub_engine
    from bridge.report.build import ReportRequest, build_report, owner_names
    from sandbox.common.world import World

    rss_after_imports = peak_rss_mb()
    engine = hub_engine.get_engine(f"sqlite:///{db}")
    owners = owner_names([{"id": e.owner_id, "firstName": e.name[1:], "lastName": e.name[:1]}
                          for e in World(seed=SEED, companies=0, deals=0).owners])
    started = time.perf_counter()
    built = build_report(engine, bridge_dictionary.load(), permissions.load(), ReportRequest(report_day=REPORT_DAY, owners=owners,
                         recipients=["management@example.com"], built_at=NOW + timedelta(hours=7), out_root=out))
    wall = time.perf_counter() - started
    return {"wall_seconds": round(wall, 2), "phases": {k: round(v, 2) for k, v in built.timings.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_imports_mb": round(rss_after_imports, 1),
            "import_seconds": round(started - base_start, 2), "rows_read": built.rows_read,
            "files": {k: str(v) for k, v in built.paths.items()},
            "sizes_kb": {k: round(v.stat().st_size / 1024, 1) for k, v in built.paths.items()},
            "figures": {k: built.figures.get(k) for k in ("won_amount_ytd", "open_pipeline_deals", "contracts_ytd")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/daily_report.py", description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--oa", type=int, default=200_000)
    parser.add_argument("--companies", type=int, default=20_000)
    staging_arguments(parser, "daily_report")
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)

    if args.build_only:
        print(json.dumps(build(args.build_only, args.dir / "reports")))
        return 0

    db = args.dir / f"hub_{args.deals}_{args.oa}_{args.companies}.sqlite"
    return StagedRun(
        __file__, db,
        announce=f"staging {args.deals:,} deals, {args.oa:,} OA instances, {args.companies:,} companies into {db}",
        stage=lambda: stage(db, args.deals, args.oa, args.companies),
        measuring="building the report in a fresh process ...",
        child_args=["--build-only", str(db), "--dir", str(args.dir)],
    ).measure(args)


if __name__ == "__main__":
    raise SystemExit(main())
