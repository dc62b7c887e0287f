"""The floor every sync benchmark is compared with: a bare HTTP client paging all deals.

It pages ``POST /crm/v3/objects/deals/search`` with ``limit=200`` sorted by
``hs_lastmodifieddate`` (ties by id), and restarts past HubSpot's 10,000-result
cap from the last record seen: the next query asks for ``(modified = T and id >
last id) or modified > T`` (two filter groups), so ties at the cut are neither
lost nor read twice. With ``--clients 2`` the time range is split in two halves
read by two processes. Every deal must be read exactly once, or the run fails.

    # start a simulator, seed a million deals, page them with one and with two clients
    .venv/bin/python bench/crm_paging_floor.py --deals 1000000 --clients 1 2

    # against a running simulator (rate limits must be off: HubSpot allows 5 searches/s)
    .venv/bin/python bench/crm_paging_floor.py --url http://127.0.0.1:8101 --clients 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bare_clients import CrmFloorClient  # noqa: E402
from sandbox import launcher  # noqa: E402

CAP = 10_000


class Client(CrmFloorClient):
    """The floor's CRM client: keep-alive, counted requests, deals searched by modification time."""

    def search(self, groups: list[list[dict[str, str]]], after: str | None, limit: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "filterGroups": [{"filters": g} for g in groups], "limit": limit,
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["dealname", "dealstage", "amount", "hs_lastmodifieddate", "hubspot_owner_id"],
        }
        if after is not None:
            body["after"] = after
        return self.call("POST", "/crm/v3/objects/deals/search", orjson.dumps(body))


def _f(name: str, op: str, value: int | str) -> dict[str, str]:
    return {"propertyName": name, "operator": op, "value": str(value)}


def _ms(record: dict[str, Any]) -> int:
    from sandbox.crm.model import parse_time_ms

    value = parse_time_ms(record["properties"]["hs_lastmodifieddate"])
    assert value is not None
    return value


def page_range(url: str, lo: int, hi: int, limit: int) -> dict[str, Any]:
    """Read every deal with lo <= hs_lastmodifieddate < hi; return ids read and counts."""
    client = Client(url)
    ids: list[str] = []
    restarts = 0
    groups = [[_f("hs_lastmodifieddate", "GTE", lo), _f("hs_lastmodifieddate", "LT", hi)]]
    started = time.perf_counter()
    while True:
        after: str | None = None
        last: dict[str, Any] | None = None
        while True:
            page = client.search(groups, after, limit)
            results = page["results"]
            ids.extend(r["id"] for r in results)
            if results:
                last = results[-1]
            nxt = page.get("paging", {}).get("next", {}).get("after")
            if nxt is None:
                break
            if int(nxt) + limit > CAP:  # the next page would be refused: restart from the last record
                break
            after = nxt
        if nxt is None or last is None:
            break
        restarts += 1
        ts, last_id = _ms(last), last["id"]
        groups = [
            [_f("hs_lastmodifieddate", "EQ", ts), _f("hs_object_id", "GT", last_id), _f("hs_lastmodifieddate", "LT", hi)],
            [_f("hs_lastmodifieddate", "GT", ts), _f("hs_lastmodifieddate", "LT", hi)],
        ]
    elapsed = time.perf_counter() - started
    return {"ids": ids, "requests": client.requests - 1, "seconds": elapsed, "restarts": restarts}


def _worker(args: tuple[str, int, int, int]) -> dict[str, Any]:
    return page_range(*args)


def time_bounds(url: str) -> tuple[int, int, int]:
    client = Client(url)
    body = {"limit": 1, "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["hs_lastmodifieddate"]}
    first = client.call("POST", "/crm/v3/objects/deals/search", orjson.dumps(body))
    body["sorts"] = [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}]
    last = client.call("POST", "/crm/v3/objects/deals/search", orjson.dumps(body))
    return _ms(first["results"][0]), _ms(last["results"][0]) + 1, int(first["total"])


def run(url: str, clients: int, limit: int) -> dict[str, Any]:
    lo, hi, total = time_bounds(url)
    cuts = [lo + (hi - lo) * k // clients for k in range(clients)] + [hi]
    jobs = [(url, cuts[k], cuts[k + 1], limit) for k in range(clients)]
    started = time.perf_counter()
    if clients == 1:
        parts = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(clients) as pool:
            parts = pool.map(_worker, jobs)
    wall = time.perf_counter() - started
    all_ids = [i for p in parts for i in p["ids"]]
    distinct = len(set(all_ids))
    requests = sum(p["requests"] for p in parts)
    result = {
        "clients": clients, "limit": limit, "deals_total": total, "records_read": len(all_ids),
        "distinct_records": distinct, "requests": requests, "restarts": sum(p["restarts"] for p in parts),
        "seconds": round(wall, 2), "requests_per_s": round(requests / wall, 1),
        "records_per_s": round(len(all_ids) / wall, 0),
        "complete": distinct == total == len(all_ids),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running simulator (rate limits off); default: start one")
    parser.add_argument("--deals", type=int, default=1_000_000, help="seed this many deals (own simulator only)")
    parser.add_argument("--companies", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    sim = None
    try:
        url = args.url
        if url is None:
            data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="crm-floor-"))
            sim = launcher.make("crm", data_dir, args=["--rate-limits", "off"], max_lifetime=3 * 3600)
            for suffix in ("", "-wal", "-shm"):
                Path(str(sim.db_path) + suffix).unlink(missing_ok=True)
            sim.start()
            url = sim.url
            t0 = time.perf_counter()
            seeded = sim.admin("POST", "/_sim/seed", {"seed": args.seed, "companies": args.companies,
                                                       "contacts_per_company": 2, "deals": args.deals}, timeout=1800)
            results["seed"] = {**(seeded if isinstance(seeded, dict) else {}),
                               "wall_seconds": round(time.perf_counter() - t0, 2)}
            print(f"seeded: {json.dumps(results['seed'])}", flush=True)
        for n in args.clients:
            r = run(url, n, args.limit)
            results[f"clients_{n}"] = r
            print(json.dumps(r), flush=True)
            if not r["complete"]:
                print("FAILED: not every deal was read exactly once", file=sys.stderr)
                return 1
    finally:
        if sim is not None:
            sim.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
