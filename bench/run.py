"""``make bench``: every performance scenario of issue 11 against the simulators, each beside its floor.

    make bench                                   # full sizes (about an hour or more on 2 cores)
    make bench BENCH_ARGS="--quick"              # small sizes, a smoke run of a few minutes
    make bench BENCH_ARGS="--only 1,3,6"         # some scenarios
    .venv/bin/python -m bench.run --quick --only 2,6 --out /tmp/bench.json

Scenarios (sizes: full / ``--quick``):

1. incremental CRM → OA sync of 10,000 / 500 changed deals: wall time, records/s, API calls
   per record; floor = the same necessary API calls from a bare HTTP client (``bench/sync_crm_to_oa.py``);
2. debounce: 1,000 / 200 deals × 12 edits inside the window → OA writes; notes-only edits → 0 writes;
3. latency over a simulated working day with the DAG on its schedule (``bench/latency.py``);
4. history migration of 1,000,000 / 10,000 deals + 200,000 / 2,000 OA instances against the paging
   floor (``bench/history_migration.py``);
5. data-health suites and the 08:00 report over one staged hub of the same volume
   (``bench/data_health.py``, ``bench/daily_report.py``); floor = one plain pass over the rows they read;
6. parse time of each DAG file against a one-task DAG file (``bench/parse_time.py``);
7. extract + stage of 200,000 / 5,000 deals with their associations into a fresh hub, then 10,000 / 500
   changed deals incrementally: the bridge beside the floor with the same API calls and beside dlt
   (duckdb with parquet, SQLite) in the bench-only ``.venv-bench`` (``bench/extract_stage.py``).

Prints a table (scenario, figure, value, floor, ratio, goal, met?) and writes JSON with the machine
facts (cores, load average, versions, git commit) and every figure to ``bench/results/<date>.json``
(``<date>-quick.json`` with ``--quick``; ``<date>-only-<keys>.json`` with ``--only``). Goals are
reported, never asserted. The simulators run with their vendor rate limits off: the figures are the
bridge's and the machine's, not HubSpot's or Feishu's quotas.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Goal,
    Scenario,
    last_json_line,
    load_average,
    machine_info,
    markdown_table,
    run_child,
    table,
)

RESULTS = ROOT / "bench" / "results"
LOG = ROOT / "data" / "bench" / "bench_run.log"
GIB_MIB = 1024.0


@dataclass(frozen=True)
class Sizes:
    sync_deals: int = 10_000
    debounce_deals: int = 1_000
    debounce_edits: int = 12
    latency: dict[str, Any] | None = None  # None: bench.latency.run_latency's defaults (a full day)
    migration_deals: int = 1_000_000
    migration_companies: int = 20_000
    migration_instances: int = 200_000
    health_deals: int = 1_000_000
    health_oa: int = 200_000
    parse_repeats: int = 5
    rounds: int = 1
    stage_deals: int = 200_000
    stage_changed: int = 10_000
    stage_rounds: int = 3
    attachments: int = 10_000


FULL = Sizes()
QUICK = Sizes(sync_deals=500, debounce_deals=200, latency=None, migration_deals=10_000, migration_companies=1_000,
              migration_instances=2_000, health_deals=10_000, health_oa=2_000, parse_repeats=2,
              stage_deals=5_000, stage_changed=500, stage_rounds=1, attachments=500)

TITLES = {
    "1": "CRM → OA incremental sync",
    "2": "debounce",
    "3": "change-to-OA latency (simulated day)",
    "4": "history migration",
    "5": "data health + 08:00 report",
    "6": "DAG file parse time",
    "7": "extract + stage vs dlt",
    "8": "history attachments migration",
}


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- 1. sync


def scenario_sync(s: Scenario, sizes: Sizes, work: Path) -> None:
    from bench import sync_crm_to_oa as c2o

    rounds: dict[str, list[dict[str, Any]]] = {"bridge": [], "floor": []}
    for n in range(sizes.rounds):  # alternate: a shared machine's noise falls on both
        for name, fn in (("bridge", c2o.run_bridge), ("floor", c2o.run_floor)):
            say(f"  1: {name}, {sizes.sync_deals:,} changed deals (round {n + 1}/{sizes.rounds}) ...")
            result = fn(sizes.sync_deals, base=work / f"s1_{name}_{n}")
            rounds[name].append(result)
            say(f"     {result['wall_s']} s, {result['records_per_s']} records/s, "
                f"{result['api_calls_per_record']} calls/record")
    bridge = sorted(rounds["bridge"], key=lambda r: r["wall_s"])[len(rounds["bridge"]) // 2]
    floor = sorted(rounds["floor"], key=lambda r: r["wall_s"])[len(rounds["floor"]) // 2]
    s.raw = {"bridge": bridge, "floor": floor, "bridge_rounds_wall_s": [r["wall_s"] for r in rounds["bridge"]],
             "floor_rounds_wall_s": [r["wall_s"] for r in rounds["floor"]]}
    deals = sizes.sync_deals
    s.add("wall time", bridge["wall_s"], "s", floor=floor["wall_s"], goal=Goal("ratio", "<=", 1.5),
          note=f"median of {sizes.rounds} round(s)")
    s.add("records/s", bridge["records_per_s"], floor=floor["records_per_s"])
    s.add("API calls per record", bridge["api_calls_per_record"], floor=floor["api_calls_per_record"])
    s.add("立项申请 created", bridge["synced"], floor=floor["synced"], goal=Goal("value", "==", deals))
    s.add("duplicates", bridge["duplicates"], goal=Goal("value", "==", 0))
    s.add("quarantined", bridge["quarantined"], goal=Goal("value", "==", 0))


# ---------------------------------------------------------------- 2. debounce


def scenario_debounce(s: Scenario, sizes: Sizes, work: Path) -> None:
    from bench import sync_crm_to_oa as c2o

    deals, edits = sizes.debounce_deals, sizes.debounce_edits
    say(f"  2: {deals:,} deals × {edits} edits inside the window, then notes-only edits ...")
    r = c2o.run_debounce(deals, edits, base=work / "s2")
    s.raw = r
    writes = r["oa_writes_during_window"] + r["oa_writes_after_quiet"]
    s.add(f"OA writes after {edits} edits/deal", writes, floor=deals, goal=Goal("value", "==", deals),
          note="floor = one write per deal")
    s.add("OA writes inside the window", r["oa_writes_during_window"], goal=Goal("value", "==", 0))
    s.add("deals with more than one 立项申请", r["deals_with_more_than_one"], goal=Goal("value", "==", 0))
    s.add("notes-only edits → OA writes", r["notes_only_oa_writes"], goal=Goal("value", "==", 0),
          note=f"{r['notes_only_read']:,} deals re-read, {r['notes_only_enqueued']} queued")
    s.add("wall time (edits + cycles)", r["wall_s"], "s")


# ---------------------------------------------------------------- 3. latency


def scenario_latency(s: Scenario, sizes: Sizes, work: Path, quick: bool) -> None:
    from bench import latency

    kwargs: dict[str, Any] = dict(latency.QUICK) if quick else dict(sizes.latency or {})
    say(f"  3: simulated day {kwargs.get('start', '09:00')}–{kwargs.get('end', '18:00')} ...")
    r = latency.run_latency(**kwargs, base=work / "s3", progress=lambda m: say("     " + m))
    s.raw = r
    lat = r["latency"]
    s.add("p50 change → 立项申请", lat["p50_s"], "s")
    s.add("p95 change → 立项申请", lat["p95_s"], "s", goal=Goal("value", "<=", 300))
    s.add("max change → 立项申请", lat["max_s"], "s", note=f"{lat['n']} deals")
    for kind in ("single", "edited_on", "burst"):
        k = r["latency_by_kind"][kind]
        if k["n"]:
            s.add(f"p95, {kind.replace('_', ' ')} ({k['n']} deals)", k["p95_s"], "s")
    s.add("worst case from settings, edited without pause", r["worst_case"]["edited_without_pause_s"], "s",
          goal=Goal("value", "<=", 300), note="60 s schedule + 150 s max delay + 60 s + longest run")
    s.add("worst case from settings, single edit", r["worst_case"]["single_edit_s"], "s",
          note="60 s schedule + 60 s quiet + 60 s + longest run")
    s.add("run time p95 (real)", r["run_seconds"]["p95"], "s", note=f"{r['runs']} runs, max {r['run_seconds']['max']} s")
    s.add("missing / duplicate / unexpected 立项申请",
          r["missing"] + r["duplicates"] + r["unexpected_instances"], goal=Goal("value", "==", 0),
          note=f"{r['instances_created']} created for {r['qualifying_deals']} qualifying deals")


# ---------------------------------------------------------------- 4. migration


def scenario_migration(s: Scenario, sizes: Sizes, work: Path) -> None:
    script = ROOT / "bench" / "history_migration.py"
    if not script.exists():
        s.status, s.reason = "not available", "bench/history_migration.py missing"
        return
    out = work / "s4.json"
    cmd = [sys.executable, str(script), "--deals", str(sizes.migration_deals), "--companies",
           str(sizes.migration_companies), "--instances", str(sizes.migration_instances),
           "--data-dir", str(work / "s4"), "--json", str(out)]
    say(f"  4: {sizes.migration_deals:,} deals + {sizes.migration_instances:,} OA instances "
        "(seed, paging floor, migration) ...")
    child = run_child(cmd, timeout=8 * 3600, log_path=work / "s4.log", echo=True)
    if child.returncode != 0 or not out.exists():
        tail = [line for line in child.stderr.strip().splitlines() if line.strip()][-1:] or [f"exit {child.returncode}"]
        s.status, s.reason = "error", f"bench/history_migration.py failed: {tail[0][:200]}"
        return
    r = json.loads(out.read_text())
    s.raw = r
    mig, fcrm, foa = r.get("migration"), r.get("floor_crm", {}).get("total"), r.get("floor_oa")
    if not mig or not fcrm or not foa:
        s.status, s.reason = "error", "bench/history_migration.py gave no migration or floor figures"
        return
    floor_s = fcrm["seconds"] + foa["seconds"]
    floor_records = fcrm["records"] + foa["instances"]
    read = mig["result"]["counts"]["read"] if isinstance(mig.get("result"), dict) else None
    s.add("wall time", round(mig["wall_seconds"], 1), "s", floor=round(floor_s, 2),
          note="floor = page every CRM object + list and read every OA instance, bare HTTP")
    s.add("records/s", mig["records_per_s"], floor=round(floor_records / floor_s) if floor_s else None,
          note=f"{read:,} records read" if isinstance(read, int) else "")
    s.add("peak RSS (process tree)", mig["peak_rss_tree_mb"], "MiB", goal=Goal("value", "<=", GIB_MIB))
    calls = mig.get("api_calls_total") or {}
    if calls:
        s.add("API calls", sum(calls.values()),
              floor=fcrm["requests"] + foa["requests"], note=", ".join(f"{k} {v:,}" for k, v in calls.items()))


# ---------------------------------------------------------------- 5. data health + report

FLOOR_READ = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/plugins"]
from sqlalchemy import create_engine, select
from bridge.hub.schema import snapshot
engine = create_engine("sqlite:///" + sys.argv[2])
out = {}
with engine.connect() as conn:
    entities = [row[0] for row in conn.execute(select(snapshot.c.entity).distinct())]
    for entity in entities:
        t0 = time.perf_counter()
        n = 0
        result = conn.execution_options(yield_per=20000, stream_results=True).execute(
            select(snapshot.c.source_id, snapshot.c.payload).where(snapshot.c.entity == entity))
        for part in result.partitions(20000):
            n += len(part)
        out[entity] = {"rows": n, "seconds": time.perf_counter() - t0}
print(json.dumps(out))
"""


def scenario_health_report(s: Scenario, sizes: Sizes, work: Path) -> None:
    deals, oa = sizes.health_deals, sizes.health_oa
    companies = max(1, deals // 2)  # bench/data_health.py's default proportion
    stage_dir = ROOT / "data" / "bench" / "data_health"
    db = stage_dir / f"hub_{deals}_{companies}_{oa}.sqlite"
    say(f"  5: data health over {deals:,} deals, {companies:,} companies, {2 * companies:,} contacts, "
        f"{oa:,} OA instances (the hub is staged once and kept under {stage_dir.relative_to(ROOT)}; "
        f"{'reused' if db.with_suffix('.staged.json').exists() else 'staging it first: ~11 min at 1,000,000 deals'}) ...")
    dh_out = work / "s5_data_health.json"
    child = run_child([sys.executable, str(ROOT / "bench" / "data_health.py"), "--deals", str(deals), "--oa", str(oa),
                       "--dir", str(stage_dir), "--out", str(dh_out)], timeout=4 * 3600,
                      log_path=work / "s5_data_health.log", echo=False)
    if child.returncode != 0 or not dh_out.exists():
        s.status, s.reason = "error", f"bench/data_health.py failed (exit {child.returncode}); see {work}/s5_data_health.log"
        return
    dh = json.loads(dh_out.read_text())
    say(f"     data health: {dh['wall_seconds']} s, peak RSS {dh['peak_rss_mb']} MiB")
    # The 08:00 report over the same hub, in a fresh process (bench/daily_report.py's child mode).
    say("  5: the 08:00 report over the same hub ...")
    rep_child = run_child([sys.executable, str(ROOT / "bench" / "daily_report.py"), "--build-only", str(db), "--dir",
                           str(work / "s5_report")], timeout=3600, log_path=work / "s5_report.log")
    report = last_json_line(rep_child.stdout)
    if rep_child.returncode != 0 or report is None:
        s.status, s.reason = "error", f"bench/daily_report.py --build-only failed (exit {rep_child.returncode})"
        s.raw = {"data_health": dh}
        return
    say(f"     report: {report['wall_seconds']} s, peak RSS {report['peak_rss_mb']} MiB")
    say("  5: floor: one plain pass over the staged rows ...")
    floor_child = run_child([sys.executable, "-c", FLOOR_READ, str(ROOT), str(db)], timeout=3600)
    floor = last_json_line(floor_child.stdout)
    if floor_child.returncode != 0 or floor is None:
        s.status, s.reason = "error", "the hub read floor failed"
        return
    from bridge.report.load import REPORT_FIELDS

    floor_health = sum(v["seconds"] for v in floor.values())
    floor_report = sum(v["seconds"] for k, v in floor.items() if k in REPORT_FIELDS)
    s.raw = {"data_health": dh, "report": report, "floor_read": floor, "hub": str(db.relative_to(ROOT))}
    s.add("data health, every suite", dh["wall_seconds"], "s", floor=round(floor_health, 2),
          note=f"{dh['checks']} checks, {dh['failed_checks']} failing (the seeded dirty data), import {dh['import_seconds']} s not counted")
    s.add("data health peak RSS", dh["peak_rss_mb"], "MiB", goal=Goal("value", "<=", GIB_MIB))
    s.add("08:00 report build", report["wall_seconds"], "s", floor=round(floor_report, 2),
          note=f"{report.get('rows_read', 0):,} rows read" if isinstance(report.get("rows_read"), int) else "")
    s.add("08:00 report peak RSS", report["peak_rss_mb"], "MiB", goal=Goal("value", "<=", GIB_MIB))
    reused = "reusing the staged hub" in child.stdout
    s.add("hub staging" + (" (earlier run, reused)" if reused else ""), dh.get("staged", {}).get("seconds"), "s",
          note=f"hub {dh.get('hub_mb')} MiB" + ("; staged by an earlier run, not timed now" if reused else ""))


# ---------------------------------------------------------------- 6. parse time


def scenario_parse(s: Scenario, sizes: Sizes, work: Path) -> None:
    from bench import parse_time

    say(f"  6: each DAG file in {sizes.parse_repeats} fresh interpreter(s) ...")
    r = parse_time.run_parse_time(sizes.parse_repeats)
    s.raw = r
    floor = r["floor"].get("parse_s", {}).get("median")
    for name, facts in r["files"].items():
        if "error" in facts:
            s.add(name, None, note=f"import failed: {facts['error'][:120]}")
            continue
        s.add(f"{name} (median)", facts["parse_s"]["median"], "s", floor=floor, goal=Goal("value", "<", 0.5),
              note=f"max {facts['parse_s']['max']} s; cold interpreter incl. Airflow {facts['cold_s']['median']} s")
    sdk = r["floor"].get("sdk_s", {}).get("median")
    s.add("Airflow SDK import (not a DAG's cost)", sdk, "s", note="what the DAG processor has already loaded")


# ---------------------------------------------------------------- 7. extract + stage vs dlt


def scenario_extract_stage(s: Scenario, sizes: Sizes, work: Path) -> None:
    from bench import extract_stage

    out = work / "s7.json"
    cmd = [sys.executable, "-m", "bench.extract_stage", "--deals", str(sizes.stage_deals), "--changed",
           str(sizes.stage_changed), "--rounds", str(sizes.stage_rounds), "--json", str(out)]
    pg = os.environ.get("BRIDGE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    if _pg_reachable(pg):
        cmd += ["--pg", pg]
    say(f"  7: {sizes.stage_deals:,} deals, then {sizes.stage_changed:,} changed; bridge (SQLite"
        f"{', PostgreSQL' if '--pg' in cmd else ''} hub), floor, dlt; {sizes.stage_rounds} alternating round(s) ...")
    child = run_child(cmd, timeout=6 * 3600, log_path=work / "s7.log")
    if child.returncode != 0 or not out.exists():
        s.status, s.reason = "error", f"bench/extract_stage.py failed (exit {child.returncode}); see {work}/s7.log"
        return
    r = json.loads(out.read_text())
    s.raw = r
    if not extract_stage.BENCH_PYTHON.exists():
        s.reason = "dlt readers left out: .venv-bench missing (scripts/bench-env.sh makes it)"
    for phase in ("full", "incremental"):
        f = r.get(phase)
        if not f:
            continue
        label = f"{r['deals']:,} deals, fresh hub" if phase == "full" else f"{r['changed']:,} changed deals"
        bridge, floor = f["bridge"], f["floor"]
        s.add(f"{label}: bridge records/s", bridge["records_per_s_median"], floor=floor["records_per_s_median"],
              note=f"median of {r['rounds']}; peak RSS {bridge['peak_rss_mib_max']} MiB (goal ≤ 200)")
        s.add(f"{label}: bridge time", bridge["seconds_median"], "s", floor=floor["seconds_median"],
              goal=Goal("ratio", "<=", 2.0) if phase == "full" else None,
              note="floor = the same API calls, bare")
        for dlt_name in ("dlt_duckdb", "dlt_sqlite"):
            if dlt_name in f:
                speedup = f.get(f"speedup_bridge_vs_{dlt_name}")
                s.add(f"{label}: bridge ÷ {dlt_name.replace('_', ' → ')} speed", speedup, "×",
                            goal=Goal("value", ">=", 3.0) if phase == "full" and dlt_name == "dlt_duckdb" else None,
                            note=f"{dlt_name}: {f[dlt_name]['records_per_s_median']} records/s, "
                                 f"peak RSS {f[dlt_name]['peak_rss_mib_max']} MiB")
        if "bridge_pg" in f:
            s.add(f"{label}: bridge, PostgreSQL hub, time", f["bridge_pg"]["seconds_median"], "s",
                  floor=floor["seconds_median"], note=f"{f['bridge_pg']['records_per_s_median']} records/s")
        s.add(f"{label}: peak RSS, bridge", bridge["peak_rss_mib_max"], "MiB",
              goal=Goal("value", "<=", 200) if phase == "full" else None)


def scenario_attachments(s: Scenario, sizes: Sizes, work: Path) -> None:
    """Issue 19: N historical attachments (20 % duplicates) through the migration vs a bare upload loop."""
    out = work / "s8.json"
    cmd = [sys.executable, str(ROOT / "bench" / "attachments.py"), "--n", str(sizes.attachments), "--json", str(out)]
    say(f"  8: {sizes.attachments:,} attachments (seed, base migration, attach, bridge, floor) ...")
    child = run_child(cmd, timeout=4 * 3600, log_path=work / "s8.log", echo=False)
    if child.returncode != 0 or not out.exists():
        s.status, s.reason = "error", f"bench/attachments.py failed (exit {child.returncode})"
        return
    r = json.loads(out.read_text())
    s.raw = r
    b, f = r["bridge"], r["floor"]
    s.add("duplicate uploads", r["duplicate_uploads"], goal=Goal("value", "<=", 0))
    s.add("lost", r["lost"], goal=Goal("value", "<=", 0))
    s.add("attachments step", round(b["attach_seconds"], 2), "s", floor=round(f["seconds"], 2),
          goal=Goal("ratio", "<=", 1.3), note=f"{r['n']:,} files, {r['distinct_contents']:,} contents, "
          f"{r['bytes_attached'] / 2**20:.0f} MiB; floor = read, download, upload each content once (requests)")
    s.add("peak RSS (migration process)", b["peak_rss_mb"], "MiB", goal=Goal("value", "<=", 300.0),
          note=f"{b['rss_before_step_mb']} MiB before the attachments step")


def _pg_reachable(dsn: str) -> bool:
    try:
        import psycopg2

        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- orchestration


def _parse_only(value: str | None) -> list[str]:
    if not value:
        return list(TITLES)
    keys = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TITLES]
    if unknown:
        raise SystemExit(f"--only: unknown scenario(s) {unknown}; choose from {', '.join(TITLES)}")
    return sorted(set(keys), key=int)


def _quiet_bridge_logs(path: Path) -> None:
    """The bridge's INFO lines go to a file, as a task's log would, not into the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    # Append mode: Airflow's logging set-up (on first import) closes existing handlers; this one reopens.
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in ("bridge", "sandbox", "great_expectations", "alembic"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(logging.INFO)
        lg.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,3,6")
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<date>[-quick].json)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--rounds", type=int, help="scenario 1: alternating bridge/floor rounds (median reported)")
    parser.add_argument("--sync-deals", type=int, help="scenario 1 size")
    parser.add_argument("--debounce-deals", type=int, help="scenario 2 size")
    parser.add_argument("--parse-repeats", type=int, help="scenario 6: interpreters per file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (simulator databases, logs)")
    parser.add_argument("--table-from", type=Path, metavar="JSON",
                        help="print the table of an earlier results file (Markdown too) and exit")
    args = parser.parse_args(argv)
    if args.table_from:
        earlier = json.loads(args.table_from.read_text())
        rows = list(earlier["scenarios"].values())
        m = earlier["machine"]
        say(table(rows))
        say(f"\n{earlier['kind']} run {earlier['started_at']}, commit {str(m['git_commit'])[:10]}, {m['cpus']} cores, "
            f"load average at start {m['load_average_start']}\n")
        say(markdown_table(rows))
        if args.markdown:
            args.markdown.write_text(markdown_table(rows) + "\n")
        return 0

    sizes = QUICK if args.quick else FULL
    overrides = {k: v for k, v in {"rounds": args.rounds, "sync_deals": args.sync_deals,
                                    "debounce_deals": args.debounce_deals,
                                    "parse_repeats": args.parse_repeats}.items() if v is not None}
    if overrides:
        from dataclasses import replace

        sizes = replace(sizes, **overrides)
    keys = _parse_only(args.only)
    started_at = datetime.now(UTC)
    if args.out is None:
        suffix = "-quick" if args.quick else ""
        if args.only:
            suffix += "-only-" + "-".join(keys)
        args.out = RESULTS / f"{started_at.date().isoformat()}{suffix}.json"

    machine = machine_info()
    say(f"make bench: {'quick' if args.quick else 'full'} sizes, scenarios {', '.join(keys)}; "
        f"{machine['cpus']} cores, load average {machine['load_average_start']}, Python {machine['python']}, "
        f"Airflow {machine['airflow']}, commit {str(machine['git_commit'])[:10]}{' (dirty)' if machine['git_dirty'] else ''}")
    _quiet_bridge_logs(LOG)
    say(f"(bridge logs: {LOG.relative_to(ROOT)})")
    (ROOT / "data" / "bench").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run_", dir=ROOT / "data" / "bench"))
    runners: dict[str, Callable[[Scenario], None]] = {
        "1": lambda s: scenario_sync(s, sizes, work),
        "2": lambda s: scenario_debounce(s, sizes, work),
        "3": lambda s: scenario_latency(s, sizes, work, args.quick),
        "4": lambda s: scenario_migration(s, sizes, work),
        "5": lambda s: scenario_health_report(s, sizes, work),
        "6": lambda s: scenario_parse(s, sizes, work),
        "7": lambda s: scenario_extract_stage(s, sizes, work),
        "8": lambda s: scenario_attachments(s, sizes, work),
    }
    scenarios: list[Scenario] = []
    load_per_scenario: dict[str, list[float]] = {}
    try:
        for key in keys:
            s = Scenario(key, TITLES[key])
            say(f"[{key}] {s.title}")
            t0 = time.perf_counter()
            try:
                runners[key](s)
            except Exception as exc:  # one scenario's failure must not hide the others' figures
                s.status, s.reason = "error", f"{type(exc).__name__}: {str(exc)[:300]}"
                logging.getLogger("bridge").error("scenario %s failed:\n%s", key, traceback.format_exc())
                say(f"  scenario {key} failed: {s.reason} (traceback in {LOG.relative_to(ROOT)})")
            s.seconds = time.perf_counter() - t0
            load_per_scenario[key] = load_average()
            scenarios.append(s)
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    result = {
        "kind": "quick" if args.quick else "full",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine,
        "load_average_after": load_per_scenario,
        "sizes": {k: v for k, v in vars(sizes).items()},
        "scenarios": {s.key: s.as_dict() for s in scenarios},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    say("")
    say(table(scenarios))
    say("")
    say(f"load average at start {machine['load_average_start']}, at end {load_average()} "
        f"({machine['cpus']} cores): figures measured on a busy machine are inflated")
    say(f"results: {args.out}")
    if args.markdown:
        args.markdown.write_text(markdown_table(scenarios) + "\n")
    return 0 if all(s.status != "error" for s in scenarios) else 1


if __name__ == "__main__":
    raise SystemExit(main())
