"""Throughput of the OA simulator: the floor every OA-side sync benchmark is compared with.

``python -m sandbox.oa.bench [--instances 200000] [--reads 1000]`` starts a simulator
(rate limits off), seeds ``World`` history through the admin API (timed), then a bare
client lists every instance code of one approval code in the 10-hour windows the API
accepts, reads ``--reads`` instances one by one, and pages ``instances/query``.
Prints a JSON summary. Under Feishu's real limits the same listing is bounded by
100 requests/min (instances list) and 50 requests/s (instance get); the summary
says how long that would take.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sandbox.common.world import APPROVAL_CODES
from sandbox.oa.testing import running_oa

NOW_MS = 1_795_600_000_000


def run(instances: int, reads: int, approval: str, data_dir: Path) -> dict[str, Any]:
    code = APPROVAL_CODES[approval]
    with running_oa(data_dir, "--rate-limits", "off", max_lifetime=3600) as (_sim, oa):
        started = time.perf_counter()
        seeded = oa.admin("POST", "/seed", {"seed": 20261126, "oa_instances": instances, "now_ms": NOW_MS})
        seed_wall = time.perf_counter() - started
        expected = oa.admin("GET", "/instances", params={"approval": approval, "limit": 1})["total"]

        oa.token  # noqa: B018 - the token is not part of the listing time
        listed: list[str] = []
        started = time.perf_counter()
        for page in oa.iter_codes(code, NOW_MS - 731 * 86_400_000, NOW_MS, page_size=100):
            listed.extend(page)
        list_s = time.perf_counter() - started
        codes = len(listed)
        windows = (731 * 86_400_000) // (10 * 3_600_000) + 1
        # Every request, including those of windows with no instance.
        list_requests = oa.admin("GET", "/stats")["requests"]["GET /open-apis/approval/v4/instances"]

        sample = listed[:: max(1, len(listed) // reads)][:reads]
        started = time.perf_counter()
        for instance_code in sample:
            oa.call("GET", f"/open-apis/approval/v4/instances/{instance_code}")
        read_s = time.perf_counter() - started

        q_pages = q_rows = 0
        started = time.perf_counter()
        lo = NOW_MS - 731 * 86_400_000
        while lo <= NOW_MS:
            hi = min(NOW_MS, lo + 30 * 86_400_000)
            token = ""
            while True:
                params: dict[str, Any] = {"page_size": 200, **({"page_token": token} if token else {})}
                data = oa.call("POST", "/open-apis/approval/v4/instances/query", params=params,
                               json={"approval_code": code, "instance_start_time_from": str(lo),
                                     "instance_start_time_to": str(hi)})
                q_pages += 1
                q_rows += len(data["instance_list"])
                if not data["has_more"]:
                    break
                token = data["page_token"]
            lo = hi + 1
        query_s = time.perf_counter() - started

    return {
        "instances": instances,
        "seed": {"wall_s": round(seed_wall, 2), "server_s": seeded["seconds"],
                 "rows_per_s": round(instances / seeded["seconds"])},
        "list": {"approval": approval, "codes": codes, "expected": expected, "complete": codes == expected,
                 "windows": windows, "requests": list_requests, "seconds": round(list_s, 2),
                 "requests_per_s": round(list_requests / list_s, 1), "codes_per_s": round(codes / list_s),
                 "feishu_limited_minutes": round(list_requests / 100, 1)},
        "get": {"reads": len(sample), "seconds": round(read_s, 2), "requests_per_s": round(len(sample) / read_s, 1),
                "feishu_limited_seconds": round(len(sample) / 50, 1)},
        "query": {"pages": q_pages, "rows": q_rows, "seconds": round(query_s, 2),
                  "requests_per_s": round(q_pages / query_s, 1), "rows_per_s": round(q_rows / query_s)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.oa.bench", description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=200_000)
    p.add_argument("--reads", type=int, default=1000)
    p.add_argument("--approval", default="expense_claim", choices=sorted(APPROVAL_CODES))
    p.add_argument("--data-dir", type=Path, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oa-bench-") as tmp:
        result = run(args.instances, args.reads, args.approval, args.data_dir or Path(tmp))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
