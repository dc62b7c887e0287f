"""make bench end to end at the smallest sizes: the debounce scenario and DAG parse times (~25 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_writes_the_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "6,2", "--debounce-deals", "40",
         "--parse-repeats", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "scenario" in done.stdout
    assert "met?" in done.stdout
    assert str(out) in done.stdout

    result = json.loads(out.read_text())
    machine = result["machine"]
    assert machine["cpus"] >= 1
    assert len(machine["load_average_start"]) == 3
    assert machine["python"].startswith("3.11")
    assert machine["airflow"]
    assert machine["git_commit"] is None or len(machine["git_commit"]) == 40
    assert result["kind"] == "quick"
    assert list(result["scenarios"]) == ["2", "6"]

    debounce = result["scenarios"]["2"]
    assert debounce["status"] == "ok"
    figures = {f["name"]: f for f in debounce["figures"]}
    writes = figures["OA writes after 12 edits/deal"]
    assert writes["value"] == 40
    assert writes["floor"] == 40
    assert writes["met"] is True
    assert figures["notes-only edits → OA writes"]["value"] == 0
    assert figures["deals with more than one 立项申请"]["value"] == 0
    assert debounce["raw"]["projects_created"] == 40
    assert debounce["raw"]["notes_only_read"] == 40

    parse = result["scenarios"]["6"]
    assert parse["status"] == "ok"
    dag_files = sorted(p.name for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    assert sorted(parse["raw"]["files"]) == dag_files
    for name in dag_files:
        facts = parse["raw"]["files"][name]
        assert facts["dags"] == [name[:-3]], "one DAG per file, file name = dag_id"
        assert 0 < facts["parse_s"]["median"] < 5
        assert facts["cold_s"]["median"] >= facts["parse_s"]["median"]
    assert parse["raw"]["floor"]["dags"] == ["bench_parse_floor"]
    rows = {f["name"]: f for f in parse["figures"]}
    assert rows[f"{dag_files[0]} (median)"]["floor"] == parse["raw"]["floor"]["parse_s"]["median"]
