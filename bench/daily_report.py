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
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

NOW = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)  # 2026-11-26 00:30 Asia/Shanghai
REPORT_DAY = date(2026, 11, 26)
SEED = 20261126
CHUNK = 5000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stage(db: Path, deals: int, oa: int, companies: int) -> dict[str, Any]:
    """Create and fill the hub file; returns counts and seconds."""
    from sqlalchemy import insert

    from bridge import dictionary as bridge_dictionary
    from bridge.hub import engine as hub_engine
    from bridge.hub.schema import snapshot
    from bridge.staging import snapshot_row
    from sandbox.common.world import APPROVAL_CODES, World, wire_properties
    from sandbox.oa.definitions import load_definitions
    from sandbox.oa.history import detail
    from sandbox.oa.seed import instance_row, people_rows

    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    hub_engine.upgrade(url)
    engine = hub_engine.get_engine(url)
    d = bridge_dictionary.load()
    world = World(seed=SEED, companies=companies, deals=deals, oa_instances=oa, now_ms=int(NOW.timestamp() * 1000))
    started = time.perf_counter()
    counts: dict[str, int] = {}

    def flush(system: str, entity: str, rows: list[Any]) -> None:
        if not rows:
            return
        with engine.begin() as conn:
            conn.execute(insert(snapshot), [
                {"system": system, "entity": entity, "source_id": r.source_id, "content_hash": r.content_hash,
                 "payload": r.payload, "source_modified_ms": r.source_modified_ms, "data_owner": r.data_owner,
                 "first_seen_at": NOW, "last_seen_at": NOW, "archived": False, "deleted": False} for r in rows])
        counts[entity] = counts.get(entity, 0) + len(rows)
        rows.clear()

    for entity, objects in (("company", world.iter_companies()), ("deal", world.iter_deals())):
        rows: list[Any] = []
        for obj in objects:
            row = snapshot_row(d, entity, d.from_crm(entity, {"id": obj.id, "properties": wire_properties(obj)},
                                                        obj.associations))
            if row is not None:
                rows.append(row)
            if len(rows) >= CHUNK:
                flush("crm", entity, rows)
        flush("crm", entity, rows)
        print(f"  staged {counts.get(entity, 0):,} {entity} ({time.perf_counter() - started:.0f} s)", flush=True)

    definitions = load_definitions()
    users, _ = people_rows(world)
    people = {u["user_id"]: u for u in users}
    form_of = {code: name for name, code in APPROVAL_CODES.items()}
    buffers: dict[str, list[Any]] = {}
    for inst in world.iter_oa_instances():
        row_in = instance_row(inst)
        entity = form_of[row_in["approval_code"]]
        det = detail(row_in, definitions[row_in["approval_code"]], people)
        row = snapshot_row(d, entity, d.from_oa(entity, det))
        if row is not None:
            buf = buffers.setdefault(entity, [])
            buf.append(row)
            if len(buf) >= CHUNK:
                flush("oa", entity, buf)
    for entity, buf in buffers.items():
        flush("oa", entity, buf)
    print(f"  staged {sum(v for k, v in counts.items() if k not in ('company', 'deal')):,} OA instances "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    engine.dispose()
    return {"counts": counts, "seconds": round(time.perf_counter() - started, 1)}


def build(db: Path, out: Path) -> dict[str, Any]:
    """Build the report in this (fresh) process; wall time per phase and peak RSS."""
    base_start = time.perf_counter()
    import matplotlib  # noqa: F401
    import pandas  # noqa: F401

    from bridge import dictionary as bridge_dictionary
    from bridge import permissions
    from bridge.hub import engine as hub_engine
    from bridge.report.build import build_report, owner_names
    from sandbox.common.world import World

    rss_after_imports = _rss_mb()
    engine = hub_engine.get_engine(f"sqlite:///{db}")
    owners = owner_names([{"id": e.owner_id, "firstName": e.name[1:], "lastName": e.name[:1]}
                          for e in World(seed=SEED, companies=0, deals=0).owners])
    started = time.perf_counter()
    built = build_report(engine, bridge_dictionary.load(), permissions.load(), report_day=REPORT_DAY, owners=owners,
                         recipients=["management@example.com"], built_at=NOW + timedelta(hours=7), out_root=out)
    wall = time.perf_counter() - started
    return {"wall_seconds": round(wall, 2), "phases": {k: round(v, 2) for k, v in built.timings.items()},
            "peak_rss_mb": round(_rss_mb(), 1), "rss_after_imports_mb": round(rss_after_imports, 1),
            "import_seconds": round(started - base_start, 2), "rows_read": built.rows_read,
            "files": {k: str(v) for k, v in built.paths.items()},
            "sizes_kb": {k: round(v.stat().st_size / 1024, 1) for k, v in built.paths.items()},
            "figures": {k: built.figures.get(k) for k in ("won_amount_ytd", "open_pipeline_deals", "contracts_ytd")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/daily_report.py", description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--oa", type=int, default=200_000)
    parser.add_argument("--companies", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "bench" / "daily_report")
    parser.add_argument("--restage", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)

    if args.build_only:
        print(json.dumps(build(args.build_only, args.dir / "reports")))
        return 0

    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"hub_{args.deals}_{args.oa}_{args.companies}.sqlite"
    stamp = db.with_suffix(".staged.json")
    staging: dict[str, Any] | None = None
    if args.restage or not stamp.exists():
        print(f"staging {args.deals:,} deals, {args.oa:,} OA instances, {args.companies:,} companies into {db}",
              flush=True)
        staging = stage(db, args.deals, args.oa, args.companies)
        stamp.write_text(json.dumps(staging))
    else:
        staging = json.loads(stamp.read_text())
        print(f"reusing the staged hub {db} ({staging['counts']})", flush=True)
    print("building the report in a fresh process ...", flush=True)
    done = subprocess.run([sys.executable, __file__, "--build-only", str(db), "--dir", str(args.dir)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"})
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["staged"] = staging
    result["hub_mb"] = round(db.stat().st_size / 2**20, 1)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
