"""OA → CRM sync at volume: API calls per run over many open instances, and the time to sync many changes.

Each measurement starts fresh simulators (rate limits off: the figures are the
client's and the servers', not the vendors' quotas) and a SQLite hub:

``run_open(instances, changed_share)``
    ``instances`` pending 费用报销 (submitted through the OA simulator's admin
    API, customers that exist in the CRM, created over the last 25 days) are
    discovered and staged by a first run (not timed; reported). Then one run
    with nothing changed, and one after ``changed_share`` of them were approved:
    API calls per endpoint, seconds, what was written.
``run_changes(instances, budget)``
    ``instances`` pending expenses staged as above, then all approved (admin
    API, not timed). Timed: sync runs (discover + load, ``max_instance_reads_per_run
    = budget``) until every approval is a note on its customer.

    .venv/bin/python bench/sync_oa_to_crm.py --instances 10000 --changed 0.01 --json /tmp/o2c.json

Importable (``make bench``): ``run_open`` and ``run_changes`` return dicts of figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from sandbox import launcher  # noqa: E402

SEED = 20261126
COMPANIES = 200
COMPANY_BASE = 30_000_000_001
APPLICANTS = ["u00011038", "u0002cfa2", "u0003790b", "u0004bb44", "u00054408", "u0006e7c8"]
DAY_MS = 86_400_000


@contextmanager
def _world(base: Path) -> Iterator[launcher.Simulators]:
    with launcher.simulators(base / "sims", seed=None, max_lifetime=7200,
                             crm_args=["--rate-limits", "off"], oa_args=["--rate-limits", "off"]) as sims:
        sims.crm.admin("POST", "/_sim/seed", {"seed": SEED, "companies": COMPANIES, "contacts_per_company": 1,
                                               "deals": 10, "dirty_share": 0.0}, timeout=600)
        with sims.as_connections():
            yield sims


def _submit_pending(sims: launcher.Simulators, n: int, now_ms: int) -> tuple[list[str], float]:
    """``n`` pending expenses created over the last 25 days (4 threads); returns codes and seconds."""
    session = requests.Session()
    started = time.perf_counter()

    def one(i: int) -> str:
        form = [{"id": "reason", "type": "textarea", "value": f"客户现场支持 {i}"},
                {"id": "expense_type", "type": "radioV2", "value": "交通"},
                {"id": "amount", "type": "amount", "value": 100 + i % 900},
                {"id": "expense_date", "type": "date", "value": "2026-11-20T00:00:00+08:00"},
                {"id": "customer_id", "type": "input", "value": str(COMPANY_BASE + i % COMPANIES)}]
        body = {"approval": "expense_claim", "user_id": APPLICANTS[i % len(APPLICANTS)], "form": form,
                "start_time": now_ms - 25 * DAY_MS + i * (25 * DAY_MS // max(n, 1))}
        r = session.post(sims.oa.url + "/_sim/act/submit", json=body, timeout=60)
        r.raise_for_status()
        return str(r.json()["instance_code"])

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(one, range(n)))
    return codes, time.perf_counter() - started


def _approve(sims: launcher.Simulators, codes: list[str]) -> float:
    session = requests.Session()
    started = time.perf_counter()

    def one(code: str) -> None:
        session.post(sims.oa.url + "/_sim/act/approve", json={"instance_code": code}, timeout=60).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, codes))
    return time.perf_counter() - started


class _Bridge:
    """Hooks, hub, settings and one-call runs (as the DAG's tasks do)."""

    def __init__(self, base: Path, budget: int) -> None:
        import bridge.dictionary
        from bridge import permissions
        from bridge.hooks.crm import CrmHook
        from bridge.hooks.oa import OaHook
        from bridge.hub import engine
        from bridge.sync import oa_to_crm

        self.hub = engine.ensure_schema(f"sqlite:///{base / 'hub.sqlite'}")
        self.oa, self.crm = OaHook(), CrmHook()
        self.d = bridge.dictionary.load()
        self.p = permissions.load(dictionary=self.d)
        self.cfg = oa_to_crm.with_overrides(oa_to_crm.OaToCrmSettings.from_settings(), max_instance_reads_per_run=budget,
                                            initial_backfill_seconds=30 * 86_400, query_lag_ms=0)
        self.runs = 0

    def run(self) -> dict[str, Any]:
        from bridge.context import RunContext
        from bridge.sync import oa_to_crm

        self.runs += 1
        ctx = RunContext(dag_id="oa_to_crm_sync", run_id=f"bench__{self.runs}", task_id=None, try_number=1,
                         principal="bench")
        started = time.perf_counter()
        found = oa_to_crm.discover(self.oa, self.hub, ctx, self.cfg, datetime.now(UTC), dictionary=self.d,
                                   policy=self.p)
        middle = time.perf_counter()
        loaded = oa_to_crm.load(self.crm, self.hub, ctx, self.cfg, datetime.now(UTC), dictionary=self.d, policy=self.p)
        ended = time.perf_counter()
        calls = {**found.api_calls, **loaded.api_calls}
        return {
            "seconds": round(ended - started, 2), "discover_seconds": round(middle - started, 2),
            "load_seconds": round(ended - middle, 2),
            "oa_calls": sum(v for k, v in calls.get("oa", {}).items() if "/auth/" not in k),
            "crm_calls": sum(v for k, v in calls.get("crm", {}).items() if "/oauth/" not in k),
            "calls_by_endpoint": calls,
            "counts": {k: v for k, v in {**found.counts, **loaded.counts}.items()
                       if k in ("listed", "discovered", "read", "status_spans", "status_changed", "swept_pending",
                                "swept_deleted", "open_instances", "reads_deferred", "written_notes", "enqueued",
                                "due", "quarantined", "unchanged")},
        }

    def close(self) -> None:
        self.oa.close()
        self.crm.close()
        self.hub.dispose()


def _stage(sims: launcher.Simulators, bridge: _Bridge, n: int) -> tuple[list[str], dict[str, Any]]:
    codes, submit_s = _submit_pending(sims, n, int(time.time() * 1000))
    first = bridge.run()
    first["submit_seconds"] = round(submit_s, 1)
    return codes, first


def run_open(instances: int = 10_000, changed_share: float = 0.01) -> dict[str, Any]:
    """API calls per run with ``instances`` open instances: unchanged, and with a share approved."""
    with tempfile.TemporaryDirectory(prefix="bench-o2c-") as tmp, _world(Path(tmp)) as sims:
        bridge = _Bridge(Path(tmp), budget=max(2000, instances))
        try:
            codes, first = _stage(sims, bridge, instances)
            quiet = bridge.run()
            changed = codes[: int(instances * changed_share)]
            _approve(sims, changed)
            after = bridge.run()
            settled = bridge.run()
        finally:
            bridge.close()
    return {"instances": instances, "first_run_staging": first, "no_change": quiet,
            "changed": {"instances": len(changed), **after}, "next_run": settled}


def run_changes(instances: int = 10_000, budget: int = 2000) -> dict[str, Any]:
    """Seconds from ``instances`` approvals to the last note on its customer, runs of ``budget`` reads."""
    with tempfile.TemporaryDirectory(prefix="bench-o2c-") as tmp, _world(Path(tmp)) as sims:
        bridge = _Bridge(Path(tmp), budget=max(2000, instances))
        try:
            codes, first = _stage(sims, bridge, instances)
            approve_s = _approve(sims, codes)
            bridge.cfg = type(bridge.cfg)(**{**bridge.cfg.__dict__, "max_instance_reads_per_run": budget})
            runs: list[dict[str, Any]] = []
            started = time.perf_counter()
            written = 0
            while written < instances and len(runs) < 50:
                run = bridge.run()
                runs.append(run)
                written += run["counts"].get("written_notes", 0)
            total = time.perf_counter() - started
            notes = sims.crm.admin("GET", "/_sim/stats")["objects"].get("notes", 0)  # type: ignore[index]
        finally:
            bridge.close()
    return {"instances": instances, "budget": budget, "approve_seconds": round(approve_s, 1),
            "first_run_staging_seconds": first["seconds"], "runs": len(runs), "seconds": round(total, 2),
            "per_second": round(instances / total, 1) if total else None, "notes_in_crm": notes,
            "oa_calls": sum(r["oa_calls"] for r in runs), "crm_calls": sum(r["crm_calls"] for r in runs),
            "run_seconds": [r["seconds"] for r in runs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/sync_oa_to_crm.py", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share approved for the second run")
    parser.add_argument("--budget", type=int, default=2000, help="max_instance_reads_per_run for run_changes")
    parser.add_argument("--only", choices=["open", "changes"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="seconds")}
    if args.only in (None, "open"):
        out["open"] = run_open(args.instances, args.changed)
        print(json.dumps(out["open"], ensure_ascii=False, indent=1), flush=True)
    if args.only in (None, "changes"):
        out["changes"] = run_changes(args.instances, args.budget)
        print(json.dumps(out["changes"], ensure_ascii=False, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
