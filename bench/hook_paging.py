"""CrmHook.iter_changed paging all deals vs a bare ``requests`` loop on the same simulator.

Three readers of every deal (``limit=200``, the same five properties), each
checked to read every deal exactly once:

- ``bare_offset``: the cheapest bare loop: offset paging (``after``) inside
  each 10,000-result window, restarting past the cap as
  ``bench/crm_paging_floor.py`` does. It silently skips a record whenever a
  record it already read is edited while it pages (HubSpot's ``after`` is an
  offset), which is why the hook does not page exactly this way;
- ``bare_overlap``: a bare loop sending exactly the hook's requests (each page
  overlaps the previous one by a record, which proves nothing moved; restart at
  ``modified >= T`` past the cap): hook / bare_overlap is the hook's own
  overhead (auth, retry wrapper, size cap, JSON/shape/order checks, counters);
- ``hook``: ``CrmHook.iter_changed``.

Rounds alternate the readers; the median of each is reported (records/s) with
the ratio ``hook time / bare time`` (goal ≤ 1.1), the ratio of the best round
of each, and the CPU seconds (client + simulator) each reader cost, which
stays meaningful when other work shares the machine (wall time does not).

    .venv/bin/python bench/hook_paging.py --deals 100000 --rounds 3
    .venv/bin/python bench/hook_paging.py --deals 100000 --rounds 3 --json bench/results/hook_paging.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench.bare_clients import crm_session  # noqa: E402
from sandbox import launcher  # noqa: E402

PROPS = ["dealname", "dealstage", "amount", "hs_lastmodifieddate", "hubspot_owner_id"]
LIMIT = 200
CAP = 10_000
SEARCH = "/crm/v3/objects/deals/search"


def _f(name: str, op: str, value: int | str) -> dict[str, str]:
    return {"propertyName": name, "operator": op, "value": str(value)}


def _ms(obj: dict[str, Any]) -> int:
    from datetime import datetime

    raw = obj["properties"]["hs_lastmodifieddate"]
    return int(datetime.fromisoformat(raw).timestamp() * 1000 + 0.5)


def bare_overlap(url: str) -> list[str]:
    """The hook's request sequence, bare: offset pages overlapping by one record (the overlap proves
    nothing moved), restart past the cap at ``modified >= T`` dropping the ids already read at T."""
    from bench.crm_pages import search_pages

    return [o["id"] for page in search_pages(crm_session(url), url, PROPS) for o in page]


def bare_offset(url: str) -> list[str]:
    s = crm_session(url)
    ids: list[str] = []
    groups = [[_f("hs_lastmodifieddate", "GTE", 0)]]
    while True:
        after: str | None = None
        last: dict[str, Any] | None = None
        nxt = None
        while True:
            body: dict[str, Any] = {"filterGroups": [{"filters": g} for g in groups], "limit": LIMIT,
                                    "properties": PROPS,
                                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
            if after is not None:
                body["after"] = after
            r = s.post(url + SEARCH, json=body, timeout=60)
            r.raise_for_status()
            page = r.json()
            ids.extend(o["id"] for o in page["results"])
            if page["results"]:
                last = page["results"][-1]
            nxt = page.get("paging", {}).get("next", {}).get("after")
            if nxt is None or int(nxt) + LIMIT > CAP:
                break
            after = nxt
        if nxt is None or last is None:
            return ids
        ts = _ms(last)
        groups = [[_f("hs_lastmodifieddate", "EQ", ts), _f("hs_object_id", "GT", last["id"])],
                  [_f("hs_lastmodifieddate", "GT", ts)]]


def hook(url: str) -> list[str]:
    from bridge.hooks._auth import TokenCache
    from bridge.hooks.crm import CrmHook

    TokenCache.clear_all()  # every reader pays for its token
    h = CrmHook("bench_crm")
    ids = [o["id"] for page in h.iter_changed("deals", 0, PROPS) for o in page]
    hook.calls = h.api_calls.total()  # type: ignore[attr-defined]
    return ids


def _cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a running simulator with --rate-limits off (default: start one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sim = None
    try:
        url = args.url
        if url is None:
            data_dir = Path(tempfile.mkdtemp(prefix="hook-paging-"))
            sim = launcher.make("crm", data_dir, args=["--rate-limits", "off"], max_lifetime=3600)
            sim.start()
            sim.admin("POST", "/_sim/seed", {"seed": 20261126, "companies": max(1, args.deals // 20),
                                             "contacts_per_company": 0, "deals": args.deals}, timeout=1800)
            url = sim.url
        os.environ["AIRFLOW_CONN_BENCH_CRM"] = launcher.connection_env(url, "http://unused")["AIRFLOW_CONN_CRM_DEFAULT"]
        readers: dict[str, Callable[[str], list[str]]] = {"bare_overlap": bare_overlap, "bare_offset": bare_offset,
                                                          "hook": hook}
        hook(url)  # warm-up: imports Airflow once, outside the timings
        times: dict[str, list[float]] = {k: [] for k in readers}
        cpu: dict[str, list[float]] = {k: [] for k in readers}
        server_pid = sim.pid if sim is not None else None
        total = None
        for _ in range(args.rounds):
            for name, reader in readers.items():
                c0, s0 = time.process_time(), _cpu_seconds(server_pid)
                t0 = time.perf_counter()
                ids = reader(url)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0 + _cpu_seconds(server_pid) - s0)
                if len(ids) != len(set(ids)):
                    raise SystemExit(f"{name}: {len(ids) - len(set(ids))} records read twice")
                total = total or len(ids)
                if len(ids) != total:
                    raise SystemExit(f"{name}: read {len(ids)} records, another reader {total}")
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
        out = {
            "deals": total, "rounds": args.rounds, "hook_api_calls": getattr(hook, "calls", None),
            **{f"{k}_seconds": round(v, 3) for k, v in med.items()},
            **{f"{k}_records_per_s": round((total or 0) / v) for k, v in med.items()},
            "ratio_hook_vs_bare_overlap": round(med["hook"] / med["bare_overlap"], 3),
            "ratio_hook_vs_bare_offset": round(med["hook"] / med["bare_offset"], 3),
            "ratio_hook_vs_bare_offset_best_of_rounds": round(best["hook"] / best["bare_offset"], 3),
            "ratio_hook_vs_bare_overlap_best_of_rounds": round(best["hook"] / best["bare_overlap"], 3),
            # CPU seconds (client + simulator) per reader: stable when other work shares the machine.
            **{f"{k}_cpu_seconds": round(v, 3) for k, v in cpu_med.items()},
            "cpu_ratio_hook_vs_bare_offset": round(cpu_med["hook"] / cpu_med["bare_offset"], 3)
            if cpu_med["bare_offset"] else None,
            "cpu_ratio_hook_vs_bare_overlap": round(cpu_med["hook"] / cpu_med["bare_overlap"], 3)
            if cpu_med["bare_overlap"] else None,
            "load_average": os.getloadavg(),
            "all_times": {k: [round(x, 3) for x in v] for k, v in times.items()},
        }
        print(json.dumps(out, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2))
        return 0
    finally:
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    raise SystemExit(main())
