"""bench/extract_stage.py at a small size: the floor sends the bridge's requests and every reader reads
every deal (the dlt readers are exercised by ``make bench``, which builds ``.venv-bench``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_floor_reads_what_the_hook_reads_with_the_same_requests(tmp_path: Path) -> None:
    from bench.crm_pages import pages, session

    from sandbox import launcher

    sim = launcher.make("crm", tmp_path / "crm", args=["--rate-limits", "off"], max_lifetime=300)
    sim.start()
    try:
        sim.admin("POST", "/_sim/seed", {"seed": 7, "companies": 30, "contacts_per_company": 0, "deals": 700})
        props = ["dealname", "dealstage", "amount"]
        s = session(sim.url, launcher.CRM_CLIENT_ID, launcher.CRM_CLIENT_SECRET, launcher.CRM_REFRESH_TOKEN)
        sim.admin("POST", "/_sim/stats/reset")
        floor = [(o["id"], tuple(companies[o["id"]])) for objects, companies in pages(s, sim.url, props)
                 for o in objects]
        floor_requests = sim.admin("GET", "/_sim/stats")["requests"]

        os.environ.update(launcher.connection_env(sim.url, "http://127.0.0.1:9"))
        from bridge.hooks.crm import CrmHook

        hook = CrmHook()
        sim.admin("POST", "/_sim/stats/reset")
        read = []
        for page in hook.iter_changed("deals", 0, props):
            ids = [str(o["id"]) for o in page]
            found = hook.read_associations("deals", "companies", ids)
            read.extend((i, tuple(found[i])) for i in ids)
        hook_requests = sim.admin("GET", "/_sim/stats")["requests"]
    finally:
        sim.stop()
    assert len(floor) == 700
    assert len({i for i, _ in floor}) == 700
    assert floor == read
    vendor = {k: v for k, v in hook_requests.items() if "oauth" not in k}
    assert {k: v for k, v in floor_requests.items() if "oauth" not in k} == vendor
    assert vendor["POST /crm/v3/objects/deals/search"] == 4


@pytest.mark.timeout(300)
def test_extract_stage_bench_runs_bridge_and_floor(tmp_path: Path) -> None:
    out = tmp_path / "stage.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.extract_stage", "--deals", "600", "--changed", "60", "--rounds", "1",
         "--dlt-python", str(tmp_path / "no-such-python"), "--json", str(out), "--baseline", str(ROOT),
         "--profile", str(tmp_path / "profiles")],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "dlt readers are left out" in done.stderr
    result = json.loads(out.read_text())
    full, incremental = result["full"], result["incremental"]
    assert full["bridge"]["records"] == full["floor"]["records"] == 600
    assert full["bridge"]["rounds"][0]["staged"] == 600
    assert full["ratio_bridge_vs_floor_time"] > 0
    assert incremental["floor"]["records"] == 60
    assert incremental["bridge"]["records"] >= 60  # the lookback re-reads what changed just before
    assert "dlt_duckdb" not in full
    # --baseline: the same child from another checkout (here this one), on the same simulator
    assert full["bridge_base"]["records"] == 600
    assert full["bridge_base"]["rounds"][0]["staged"] == 600
    assert full["ratio_bridge_vs_base_time"] > 0
    # --profile: cProfile statistics of each bridge child, readable by pstats
    import pstats

    profiles = sorted((tmp_path / "profiles").glob("bridge-*.prof"))
    assert len(profiles) == 2  # the full round and the incremental one
    assert "stage_changes" in str(pstats.Stats(str(profiles[0])).stats)


@pytest.mark.timeout(300)
def test_stage_cpu_bench_stages_every_deal_in_both_trees(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.stage_cpu", "--deals", "500", "--rounds", "1", "--baseline", str(ROOT),
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("bridge", "bridge_base"):
        [round_] = result[name]["rounds"]
        assert round_["records"] == round_["staged"] == 500
        assert round_["cpu_seconds"] > 0
    assert result["cpu_ratio_bridge_vs_base"] > 0
