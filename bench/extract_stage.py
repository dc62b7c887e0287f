"""Extract + stage deals into the hub: the bridge beside the floor with the same API calls and beside dlt.

One CRM simulator (rate limits off) seeded with ``--deals`` deals (one company per 20 deals). Readers,
each in a child process (its own peak RSS), in alternating order, ``--rounds`` times on a fresh target:

- ``bridge``: the CRM → OA sync's ``extract_stage`` for deals into a fresh SQLite hub (and, with
  ``--pg``, a fresh PostgreSQL hub): search pages, association reads, mapping, hashing, snapshots,
  queue, watermark;
- ``floor``: the same requests from a bare ``requests`` loop, nothing done with the answers
  (``bench/crm_pages.py``);
- ``dlt_duckdb`` / ``dlt_sqlite``: dlt with the same requests, merge on ``id``, into duckdb (parquet
  load files) and SQLite (``bench/dlt_extract.py`` in the bench-only environment ``.venv-bench``).

Then ``--changed`` deals are edited and every reader runs again incrementally from its own state
(the bridge from its watermark, dlt from its incremental cursor, the floor from the edit time), once per
round with a new batch of edits.

Prints one JSON line with records/s, peak RSS and the ratios (bridge ÷ floor time, bridge ÷ dlt speed).

    .venv/bin/python -m bench.extract_stage --deals 200000 --rounds 3 --json bench/results/extract_stage.json
    .venv/bin/python -m bench.extract_stage --deals 20000 --rounds 1 --changed 2000   # a quick look
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.common import last_json_line, load_average, machine_info, run_child  # noqa: E402
from sandbox import launcher  # noqa: E402

BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
SEED = 20261126
PG_DATABASE = "bridge_bench_extract"


# ---------------------------------------------------------------- children


def _properties() -> list[str]:
    import bridge.dictionary

    return list(bridge.dictionary.load().crm_properties("deal"))


def child_bridge(url: str, hub_url: str, profile: str | None = None) -> dict[str, Any]:
    """Stage every changed deal into ``hub_url``; with ``profile``, cProfile statistics to that file."""
    os.environ.update(launcher.connection_env(url, "http://127.0.0.1:9"))
    from datetime import UTC, datetime

    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hub import engine
    from bridge.sync import crm_to_oa

    hub = engine.ensure_schema(hub_url)
    cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), entities=("deal",))
    ctx = RunContext(dag_id="crm_to_oa_sync", run_id=f"bench__{time.time_ns()}", task_id="extract_stage",
                     try_number=1, principal="bench")
    crm = CrmHook()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    tally = crm_to_oa.extract_stage(crm, hub, ctx, cfg, datetime.now(UTC))
    seconds = time.perf_counter() - started
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return {"records": tally.counts.get("read", 0), "staged": tally.counts.get("staged", 0),
            "seconds": round(seconds, 3), "requests": crm.api_calls.total()}


def child_floor(url: str, since_ms: int) -> dict[str, Any]:
    from bench.crm_pages import pages, session

    props = _properties()
    s = session(url, launcher.CRM_CLIENT_ID, launcher.CRM_CLIENT_SECRET, launcher.CRM_REFRESH_TOKEN)
    started = time.perf_counter()
    records = requests_sent = 0
    for objects, _companies in pages(s, url, props, since_ms):
        records += len(objects)
        requests_sent += 2
    return {"records": records, "seconds": round(time.perf_counter() - started, 3), "requests": requests_sent}


# ---------------------------------------------------------------- the parent


class Readers:
    def __init__(self, url: str, base: Path, pg_dsn: str | None, dlt_python: Path | None,
                 baseline: Path | None = None) -> None:
        self.url = url
        self.base = base
        self.pg_dsn = pg_dsn
        self.dlt_python = dlt_python
        self.baseline = baseline
        self.profile_dir: Path | None = None  # cProfile statistics of each bridge (SQLite) child go there
        self.profiled = 0
        self.props = ",".join(_properties())

    def names(self) -> list[str]:
        out = ["bridge", "floor"]
        if self.baseline:
            out.append("bridge_base")
        if self.pg_dsn:
            out.append("bridge_pg")
        if self.dlt_python:
            out += ["dlt_duckdb", "dlt_sqlite"]
        return out

    def fresh(self) -> None:
        """Empty targets: a new hub file, a new PostgreSQL database, new dlt folders."""
        for name in ("hub.sqlite", "hub_base.sqlite", "dlt_duckdb", "dlt_sqlite"):
            path = self.base / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if self.pg_dsn:
            _pg_admin(self.pg_dsn, f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            _pg_admin(self.pg_dsn, f'CREATE DATABASE "{PG_DATABASE}"')

    def command(self, name: str, since_ms: int) -> list[str]:
        me = [sys.executable, "-m", "bench.extract_stage", "--url", self.url]
        if name == "bridge":
            profile = ["--profile", str(self.profile_dir / f"bridge-{self.profiled}.prof")] if self.profile_dir else []
            self.profiled += 1
            return [*me, "--child", "bridge", "--hub", f"sqlite:///{self.base / 'hub.sqlite'}", *profile]
        if name == "bridge_base":  # the same child from another checkout (its plugins, its bench)
            script = str((self.baseline or ROOT) / "bench" / "extract_stage.py")
            return [sys.executable, script, "--url", self.url, "--child", "bridge",
                    "--hub", f"sqlite:///{self.base / 'hub_base.sqlite'}"]
        if name == "bridge_pg":
            return [*me, "--child", "bridge", "--hub", _pg_url(self.pg_dsn or "", PG_DATABASE)]
        if name == "floor":
            return [*me, "--child", "floor", "--since", str(since_ms)]
        destination = name.split("_", 1)[1]
        return [str(self.dlt_python), str(ROOT / "bench" / "dlt_extract.py"), "--url", self.url,
                "--destination", destination, "--dir", str(self.base / name), "--properties", self.props,
                "--client-id", launcher.CRM_CLIENT_ID, "--client-secret", launcher.CRM_CLIENT_SECRET,
                "--refresh-token", launcher.CRM_REFRESH_TOKEN]

    def run(self, name: str, since_ms: int, expect: int) -> dict[str, Any]:
        child = run_child(self.command(name, since_ms), timeout=3600, log_path=self.base / f"{name}.log")
        result = last_json_line(child.stdout)
        if child.returncode != 0 or result is None:
            raise SystemExit(f"{name} failed ({child.returncode}); see {self.base / (name + '.log')}")
        if result["records"] < expect:
            raise SystemExit(f"{name} read {result['records']} records, expected at least {expect}")
        result["peak_rss_mib"] = child.peak_rss_mib
        result["records_per_s"] = round(result["records"] / result["seconds"], 1) if result["seconds"] else None
        return result


def _pg_admin(dsn: str, sql: str) -> None:
    from sandbox.celery_stack import pg_admin

    pg_admin(dsn, sql)


def _pg_url(dsn: str, database: str) -> str:
    from tests.pg_support import pg_url

    return pg_url(dsn, database)


def _edit(sim: launcher.SimProcess, deals: int, changed: int, round_no: int) -> int:
    """Edit ``changed`` deals (spread over the id range) once each, four people at a time; the time
    before the first edit."""
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.common.world import World

    before = int(time.time() * 1000) - 1
    step = max(1, deals // changed)
    world = World(seed=SEED, companies=0, deals=0)
    ids = [int(world.deal_id((k * step + round_no) % deals)) for k in range(changed)]

    def edit(deal_id: int) -> None:
        sim.admin("POST", "/_sim/act/update", {"object_type": "deals", "id": deal_id,
                                              "properties": {"description": f"bench edit {round_no}"}})

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(edit, ids))
    return before


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rounds in results.items():
        out[name] = {"seconds_median": _median([r["seconds"] for r in rounds]),
                     "records_per_s_median": _median([r["records_per_s"] for r in rounds]),
                     "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rounds),
                     "records": rounds[0]["records"], "requests": rounds[0].get("requests"), "rounds": rounds}
    if "bridge" in out and "floor" in out:
        out["ratio_bridge_vs_floor_time"] = round(out["bridge"]["seconds_median"] / out["floor"]["seconds_median"], 2)
    for dlt_name in ("dlt_duckdb", "dlt_sqlite"):
        if "bridge" in out and dlt_name in out:
            out[f"speedup_bridge_vs_{dlt_name}"] = round(
                out["bridge"]["records_per_s_median"] / out[dlt_name]["records_per_s_median"], 2)
    if "bridge_base" in out and "bridge" in out:
        out["ratio_bridge_vs_base_time"] = round(
            out["bridge"]["seconds_median"] / out["bridge_base"]["seconds_median"], 2)
    if "bridge_pg" in out and "floor" in out:
        out["ratio_bridge_pg_vs_floor_time"] = round(
            out["bridge_pg"]["seconds_median"] / out["floor"]["seconds_median"], 2)
    return out


@dataclass(frozen=True)
class Options:
    """Who reads besides the bridge and the floor, and what is kept."""

    pg_dsn: str | None = None
    dlt_python: Path | None = None
    baseline: Path | None = None  # a checkout of another commit: its bridge runs as ``bridge_base``
    profile_dir: Path | None = None


def run(deals: int, changed: int, rounds: int, opts: Options) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    sim = launcher.make("crm", base / "crm", args=["--rate-limits", "off"], max_lifetime=7200)
    sim.start()
    try:
        sim.admin("POST", "/_sim/seed", {"seed": SEED, "companies": max(1, deals // 20), "contacts_per_company": 0,
                                         "deals": deals}, timeout=1800)
        readers = Readers(sim.url, base, opts.pg_dsn, opts.dlt_python, opts.baseline)
        readers.profile_dir = opts.profile_dir
        names = readers.names()
        full: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        load_before = load_average()
        for round_no in range(rounds):
            readers.fresh()
            order = names if round_no % 2 == 0 else list(reversed(names))
            for name in order:
                full[name].append(readers.run(name, 0, deals))
        incremental: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        if changed:
            for round_no in range(rounds):
                since = _edit(sim, deals, changed, round_no + 1)
                order = names if round_no % 2 == 0 else list(reversed(names))
                for name in order:
                    incremental[name].append(readers.run(name, since, changed))
        return {"deals": deals, "changed": changed, "rounds": rounds, "load_average_before": load_before,
                "load_average_after": load_average(), "full": _summary(full),
                "incremental": _summary(incremental) if changed else None, "machine": machine_info()}
    finally:
        sim.stop()
        if opts.pg_dsn:
            _pg_admin(opts.pg_dsn, f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=200_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", help="a PostgreSQL DSN to also stage into a PostgreSQL hub "
                                     "(e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    parser.add_argument("--dlt-python", type=Path, default=BENCH_PYTHON,
                        help="python of the bench-only environment with dlt (make bench creates .venv-bench)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", type=Path,
                        help="a checkout of another commit (git archive of it): its bridge runs as bridge_base, "
                             "alternating with this one, on the same simulator")
    parser.add_argument("--profile", type=Path,
                        help="a folder: cProfile statistics of each bridge (SQLite) child (bridge-N.prof)")
    parser.add_argument("--child", choices=("bridge", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--hub", help=argparse.SUPPRESS)
    parser.add_argument("--since", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "bridge":
        print(json.dumps(child_bridge(args.url, args.hub, str(args.profile) if args.profile else None)))
        return 0
    if args.child == "floor":
        print(json.dumps(child_floor(args.url, args.since)))
        return 0
    dlt_python = args.dlt_python if args.dlt_python and args.dlt_python.exists() else None
    if dlt_python is None:
        print(f"extract_stage: {args.dlt_python} not found: the dlt readers are left out "
              f"(make bench creates it from bench/requirements-dlt.txt)", file=sys.stderr)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    opts = Options(args.pg, dlt_python, args.baseline, args.profile.resolve() if args.profile else None)
    result = run(args.deals, args.changed, args.rounds, opts)
    line = json.dumps(result, ensure_ascii=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
