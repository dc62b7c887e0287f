"""The extract's own work without a vendor: CRM → OA ``extract_stage`` for deals fed from memory.

Pages of the CRM simulator's seeded deals (``sandbox.common.world``, search-result shape, 200 a page)
and their company associations come from an in-memory hook, so what is timed is the bridge's part of
scenario 7 only — mapping, hashing, snapshots, queue, watermark, commits — on one core, free of the
simulator's and the HTTP stack's share of the two cores. ``--baseline`` runs the same in a checkout of
another commit (a child process importing that tree's ``plugins``), alternating, for before/after
figures that a busy shared machine does not blur: CPU seconds of the process (``time.process_time``)
beside wall seconds.

    .venv/bin/python -m bench.stage_cpu --deals 20000 --rounds 3 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261126
NOW_MS = 1_796_000_000_000


class MemoryCrm:
    """What ``stage_changes`` asks of ``CrmHook`` (pages of changed objects, associations), from memory."""

    def __init__(self, pages: list[list[dict[str, Any]]], companies: dict[str, list[str]]) -> None:
        self.pages = pages
        self.companies = companies
        self.api_calls: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def iter_changed(self, object_type: str, since: int, properties: Sequence[str],
                     page_size: int = 200) -> Iterator[list[dict[str, Any]]]:
        yield from self.pages if object_type == "deals" else []

    def read_associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        return {i: self.companies[i] for i in ids if i in self.companies}

    def archived_page(self, *args: Any, **kwargs: Any) -> Any:  # the sweep is not part of this bench
        return [], None


def deal_pages(deals: int, page_size: int = 200) -> tuple[list[list[dict[str, Any]]], dict[str, list[str]]]:
    from datetime import UTC, datetime

    from sandbox.common.world import World, wire_properties

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    world = World(seed=SEED, companies=max(1, deals // 20), contacts_per_company=0, deals=deals, oa_instances=0,
                  now_ms=NOW_MS)
    objects = [{"id": d.id, "properties": {**wire_properties(d), "hs_object_id": d.id},
                "createdAt": iso(d.created_ms), "updatedAt": iso(d.modified_ms), "archived": False}
               for d in world.iter_deals()]
    objects.sort(key=lambda o: (o["properties"]["hs_lastmodifieddate"], int(o["id"])))
    companies = {d.id: list(d.associations.get("companies", [])) for d in world.iter_deals()}
    return [objects[i:i + page_size] for i in range(0, len(objects), page_size)], companies


def child(deals: int, hub_path: str, profile: str | None) -> dict[str, Any]:
    from datetime import UTC, datetime

    import bridge.dictionary
    from bridge.context import RunContext
    from bridge.hub import engine
    from bridge.sync import crm_to_oa
    from bridge.sync.crm_to_oa.extract import stage_changes
    from bridge.sync.frame import Hooks, Run

    pages, companies = deal_pages(deals)
    d = bridge.dictionary.load()
    hub = engine.ensure_schema(f"sqlite:///{hub_path}")
    cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), entities=("deal",))
    ctx = RunContext(dag_id="crm_to_oa_sync", run_id=f"bench__{time.time_ns()}", task_id="extract_stage",
                     try_number=1, principal="bench")
    run = Run("crm_to_oa", Hooks(crm_hook=MemoryCrm(pages, companies)), hub, ctx, cfg,  # type: ignore[arg-type]
              datetime.fromtimestamp(NOW_MS / 1000, tz=UTC), d)
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    tally = stage_changes(run)
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return {"records": tally.counts.get("read", 0), "staged": tally.counts.get("staged", 0),
            "seconds": round(time.perf_counter() - wall, 3), "cpu_seconds": round(time.process_time() - cpu, 3)}


def _run_child(tree: Path, deals: int, work: Path, profile: Path | None) -> dict[str, Any]:
    hub = work / f"hub-{time.time_ns()}.sqlite"
    cmd = [sys.executable, str(tree / "bench" / "stage_cpu.py"), "--child", "--deals", str(deals), "--hub", str(hub)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-3000:]}")
    hub.unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a checkout of another commit, run alternately")
    parser.add_argument("--profile", type=Path, help="cProfile statistics of this tree's last round")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hub", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        for p in (ROOT, ROOT / "plugins"):
            sys.path.insert(0, str(p))
        print(json.dumps(child(args.deals, args.hub, str(args.profile) if args.profile else None)))
        return 0
    from bench.common import load_average

    trees = {"bridge": ROOT, **({"bridge_base": args.baseline.resolve()} if args.baseline else {})}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="stage-cpu-") as work:
        for n in range(args.rounds):
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            for name in order:
                last = n == args.rounds - 1 and name == "bridge"
                results[name].append(_run_child(trees[name], args.deals, Path(work), args.profile if last else None))
    out: dict[str, Any] = {"deals": args.deals, "rounds": args.rounds, "load_average_before": load_before,
                           "load_average_after": load_average()}
    for name, rounds in results.items():
        out[name] = {"seconds_median": statistics.median(r["seconds"] for r in rounds),
                     "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in rounds), "rounds": rounds}
    if "bridge_base" in out:
        out["cpu_ratio_bridge_vs_base"] = round(out["bridge"]["cpu_seconds_median"]
                                                / out["bridge_base"]["cpu_seconds_median"], 3)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
