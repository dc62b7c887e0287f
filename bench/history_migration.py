"""History migration at volume: a full migration vs the plain paging floor of the simulators.

Starts both simulators (rate limits off: the figures are the client's and the
servers', not HubSpot's or Feishu's quotas), seeds them through their admin
API with one ``World`` (default: 1,000,000 deals, 20,000 companies with two
contacts each, 200,000 OA instances, 5 % dirty), then measures:

``floor``
    The minimum reads of the same data with a bare HTTP client, no bridge:
    every deal, company and contact paged by search (``bench/crm_paging_floor.py``'s
    restart-past-the-cap reader), and every OA instance listed by
    ``instances/query`` and read one by one (Feishu has no batch read).
``migration``
    A full migration (``bridge.migration.steps.run_all``: the same functions
    the DAG's tasks call, in one process) into a fresh SQLite hub:
    plan, de-duplication, every chunk, write-back, report. Run in a child
    process; its process tree's RSS is sampled every 0.5 s with psutil (goal:
    peak ≤ 1 GiB); wall time, records/s and the API calls by endpoint are reported.

    .venv/bin/python bench/history_migration.py --json bench/results/history_migration.json
    .venv/bin/python bench/history_migration.py --deals 100000 --companies 5000 --instances 20000   # quicker
    .venv/bin/python bench/history_migration.py --skip-floor --chunk-size 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins", ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.bare_clients import OaFloorClient  # noqa: E402
from sandbox import launcher  # noqa: E402

SEED = 20261126
APPROVALS = {
    "project_initiation": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1001",
    "expense_claim": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1002",
    "travel_request": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1003",
    "visit_plan": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1004",
}
DAY_MS = 86_400_000


# ---------------------------------------------------------------- floor: OA
def oa_floor(url: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    """List every instance by ``instances/query`` (30-day spans, 200 per page) and read each one."""
    client = OaFloorClient(url)
    started = time.perf_counter()
    codes: list[str] = []
    for code in APPROVALS.values():
        lo = start_ms
        while lo <= end_ms:
            hi = min(end_ms, lo + 30 * DAY_MS - 1)
            token = None
            while True:
                path = "/open-apis/approval/v4/instances/query?page_size=200&user_id_type=user_id"
                if token:
                    path += "&page_token=" + urllib.parse.quote(token)
                data = client.call("POST", path, {"approval_code": code, "instance_status": "ALL",
                                                  "instance_start_time_from": str(lo),
                                                  "instance_start_time_to": str(hi)})["data"]
                codes.extend(i["instance"]["code"] for i in data.get("instance_list") or [])
                if not data.get("has_more"):
                    break
                token = data.get("page_token")
            lo = hi + 1
    listed = time.perf_counter() - started
    for code in codes:
        client.call("GET", f"/open-apis/approval/v4/instances/{code}?user_id_type=user_id")
    wall = time.perf_counter() - started
    return {"instances": len(codes), "distinct": len(set(codes)), "requests": client.requests - 1,
            "list_seconds": round(listed, 2), "seconds": round(wall, 2),
            "records_per_s": round(len(codes) / wall, 0), "requests_per_s": round((client.requests - 1) / wall, 1)}


def crm_floor(url: str) -> dict[str, Any]:
    """Page deals, companies and contacts with the floor reader of bench/crm_paging_floor.py."""
    import crm_paging_floor as floor

    out: dict[str, Any] = {}
    started = time.perf_counter()
    total_records = total_requests = 0
    for object_type in ("deals", "companies", "contacts"):
        original = floor.Client.search

        def search(self: Any, groups: Any, after: Any, limit: int, object_type: str = object_type) -> Any:
            body: dict[str, Any] = {"filterGroups": [{"filters": g} for g in groups], "limit": limit,
                                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                                    "properties": ["hs_lastmodifieddate", "hs_object_id"]}
            if after is not None:
                body["after"] = after
            return self.call("POST", f"/crm/v3/objects/{object_type}/search", orjson.dumps(body))

        floor.Client.search = search  # type: ignore[method-assign]
        try:
            lo, hi = _bounds(url, object_type)
            part = floor.page_range(url, lo, hi, 200)
        finally:
            floor.Client.search = original  # type: ignore[method-assign]
        out[object_type] = {"records": len(part["ids"]), "distinct": len(set(part["ids"])),
                            "requests": part["requests"], "seconds": round(part["seconds"], 2)}
        total_records += len(part["ids"])
        total_requests += part["requests"]
    wall = time.perf_counter() - started
    out["total"] = {"records": total_records, "requests": total_requests, "seconds": round(wall, 2),
                    "records_per_s": round(total_records / wall, 0)}
    return out


def _bounds(url: str, object_type: str) -> tuple[int, int]:
    import crm_paging_floor as floor

    client = floor.Client(url)
    body: dict[str, Any] = {"limit": 1, "properties": ["hs_lastmodifieddate"],
                            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
    first = client.call("POST", f"/crm/v3/objects/{object_type}/search", orjson.dumps(body))
    body["sorts"] = [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}]
    last = client.call("POST", f"/crm/v3/objects/{object_type}/search", orjson.dumps(body))
    return floor._ms(first["results"][0]), floor._ms(last["results"][0]) + 1


# ---------------------------------------------------------------- migration (child process)
CHILD = """
import json, os, resource, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/plugins"]
from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import engine
from bridge.migration import steps
args = json.loads(sys.argv[2])
hub = engine.ensure_schema(args["hub_url"])
m = steps.Migration.create(args["run_id"], hub=hub)
crm, oa = CrmHook(), OaHook()
t0 = time.perf_counter()
result = steps.run_all(m, args["params"], crm, oa)
wall = time.perf_counter() - t0
calls = {"crm": dict(crm.api_calls), "oa": dict(oa.api_calls)}
print("RESULT " + json.dumps({"wall_seconds": wall, "result": result, "api_calls": calls,
                              "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _sample_rss(pid: int, stop: threading.Event, peak: dict[str, float]) -> None:
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
        except psutil.Error:
            rss = 0
        peak["bytes"] = max(peak.get("bytes", 0), rss)
        stop.wait(0.5)


def run_migration(env: dict[str, str], hub_url: str, params: dict[str, Any], log_path: Path) -> dict[str, Any]:
    args = {"hub_url": hub_url, "run_id": f"bench__{int(time.time())}", "params": params}
    peak: dict[str, float] = {}
    stop = threading.Event()
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), json.dumps(args)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=log, text=True)
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, stop, peak), daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        stop.set()
        sampler.join()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"migration child failed ({proc.returncode}); see {log_path}")
    data = json.loads(lines[-1][len("RESULT "):])
    read = data["result"]["counts"]["read"]
    data["peak_rss_tree_mb"] = round(peak.get("bytes", 0) / 2**20, 1)
    data["records_per_s"] = round(read / data["wall_seconds"], 0)
    data["api_calls_total"] = {s: sum(v for k, v in c.items() if "/oauth/" not in k and "/auth/" not in k)
                               for s, c in data["api_calls"].items()}
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--companies", type=int, default=20_000)
    parser.add_argument("--instances", type=int, default=200_000)
    parser.add_argument("--dirty-share", type=float, default=0.05)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--skip-migration", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    base = args.data_dir or Path(tempfile.mkdtemp(prefix="migration-bench-"))
    results: dict[str, Any] = {"params": vars(args) | {"data_dir": str(base), "json": str(args.json)}}
    now_ms = int(time.time() * 1000) - 60_000
    with launcher.simulators(base / "sims", max_lifetime=6 * 3600, crm_args=["--rate-limits", "off"],
                             oa_args=["--rate-limits", "off"]) as sims:
        t0 = time.perf_counter()
        seeded_crm = sims.crm.admin("POST", "/_sim/seed", {
            "seed": SEED, "companies": args.companies, "contacts_per_company": 2, "deals": args.deals,
            "dirty_share": args.dirty_share, "now_ms": now_ms}, timeout=3600)
        while (sims.crm.admin("GET", "/_sim/health") or {}).get("status") != "ok":  # type: ignore[union-attr]
            time.sleep(1)
        t1 = time.perf_counter()
        seeded_oa = sims.oa.admin("POST", "/_sim/seed", {"seed": SEED, "oa_instances": args.instances,
                                                         "companies": args.companies, "deals": args.deals,
                                                         "now_ms": now_ms}, timeout=3600)
        results["seed"] = {"crm": seeded_crm, "crm_seconds": round(t1 - t0, 1), "oa": seeded_oa,
                           "oa_seconds": round(time.perf_counter() - t1, 1)}
        print("seeded:", json.dumps(results["seed"], ensure_ascii=False), flush=True)
        if not args.skip_floor:
            results["floor_crm"] = crm_floor(sims.crm.url)
            print("floor crm:", json.dumps(results["floor_crm"]), flush=True)
            results["floor_oa"] = oa_floor(sims.oa.url, now_ms - 800 * DAY_MS, now_ms)
            print("floor oa:", json.dumps(results["floor_oa"]), flush=True)
        if not args.skip_migration:
            hub_path = base / "hub.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(str(hub_path) + suffix).unlink(missing_ok=True)
            env = {**os.environ, **sims.connection_env(), "BRIDGE_DATA_DIR": str(base / "data"),
                   "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
            sims.crm.admin("POST", "/_sim/stats/reset", {})
            results["migration"] = run_migration(env, f"sqlite:///{hub_path}", {"chunk_size": args.chunk_size, "dry_run": False, "confirm_load": "确认正式迁移"},
                                                 base / "migration.log")
            mig = results["migration"]
            print("migration:", json.dumps({k: v for k, v in mig.items() if k != "api_calls"}, ensure_ascii=False),
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
