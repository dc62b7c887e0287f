"""Parse time of each DAG file (issue 11, scenario 6; goal < 0.5 s), beside a minimal DAG file as the floor.

Each measurement is a fresh interpreter. It first imports what the DAG
processor already has loaded when it parses a file — ``airflow.sdk`` and the
``airflow`` modules and names the file imports (Airflow's
``parsing_pre_import_modules`` does the same) — and times that as ``sdk_s``;
then it times the import of the DAG file itself (``parse_s``: the file's
top-level code, which is what a slow DAG file costs the scheduler on every
parse). ``cold_s`` = both: a fresh interpreter importing the file with
nothing loaded. The floor is a one-task TaskFlow DAG file measured the same way.

    .venv/bin/python bench/parse_time.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

FLOOR_DAG = '''"""The floor: the smallest TaskFlow DAG file."""
from datetime import datetime

from airflow.sdk import dag, task


@dag(dag_id="bench_parse_floor", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["bench"])
def bench_parse_floor():
    @task
    def one() -> None:
        """Nothing."""

    one()


bench_parse_floor_dag = bench_parse_floor()
'''

CHILD = r"""
import ast, importlib, importlib.util, json, sys, time
path = sys.argv[1]
t0 = time.perf_counter()
import airflow.sdk
tree = ast.parse(open(path, encoding="utf-8").read())
for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "airflow":
        mod = importlib.import_module(node.module)
        for alias in node.names:
            getattr(mod, alias.name, None)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "airflow":
                importlib.import_module(alias.name)
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_parsed_dag", path)
module = importlib.util.module_from_spec(spec)
sys.modules["bench_parsed_dag"] = module
spec.loader.exec_module(module)
t2 = time.perf_counter()
dags = sorted(v.dag_id for v in vars(module).values() if isinstance(v, airflow.sdk.DAG))
print(json.dumps({"sdk_s": t1 - t0, "parse_s": t2 - t1, "cold_s": t2 - t0, "dags": dags}))
"""


def measure(path: Path, repeats: int) -> dict[str, Any]:
    """``repeats`` fresh interpreters importing ``path``; median and max of each timing."""
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, env={"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}", "PATH": "/usr/bin:/bin",
                                               "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                                               "AIRFLOW_HOME": str(ROOT / ".airflow")},
                             check=False)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result: dict[str, Any] = {"dags": runs[-1]["dags"], "repeats": repeats}
    for key in ("parse_s", "sdk_s", "cold_s"):
        values = [r[key] for r in runs]
        result[key] = {"median": round(statistics.median(values), 4), "max": round(max(values), 4)}
    return result


def run_parse_time(repeats: int = 5) -> dict[str, Any]:
    """Every ``dags/*.py`` (not ``_*``) and the floor file."""
    files = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    with tempfile.TemporaryDirectory(prefix="bench_parse_") as tmp:
        floor_path = Path(tmp) / "bench_parse_floor.py"
        floor_path.write_text(FLOOR_DAG, encoding="utf-8")
        floor = measure(floor_path, repeats)
    return {"floor": floor, "files": {p.name: measure(p, repeats) for p in files}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run_parse_time(args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
