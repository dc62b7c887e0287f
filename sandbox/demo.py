"""``make demo``: the bridge end to end on the embedded defaults.

Starts the two simulators (seeded with a deterministic demo company), a local
mail sink, prepares the project-local Airflow home, then plays a short
business day: people act in the CRM and the OA (``sandbox.scenario``) and
every DAG of ``dags/`` runs once with ``airflow dags test``, in the order a
real day would run them. Prints what ran, the counts and where the outputs
are, and stops every process it started. Each run starts from a clean demo
state (``data/demo``), so running it twice gives the same result.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import launcher, localenv, mailsink, scenario
from sandbox.airflow_local import smtp_connection_env

ROOT = localenv.ROOT
DEMO_DIR = ROOT / "data" / "demo"
SEED = 20261126
# The order of a business day: history first (once), then the syncs, the
# health checks before the 08:00 report.
DAG_ORDER = ["history_migration", "crm_to_oa_sync", "oa_to_crm_sync", "journey_sync", "data_health", "daily_report"]


@dataclass
class DagResult:
    dag_id: str
    ok: bool
    seconds: float
    notes: list[str] = field(default_factory=list)


def dag_ids() -> list[str]:
    present = {p.stem for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_")}
    return [d for d in DAG_ORDER if d in present] + sorted(present - set(DAG_ORDER))


def run_dag(dag_id: str, env: dict[str, str], log: Path, conf: dict[str, Any] | None = None) -> tuple[bool, float]:
    args = ["dags", "test", dag_id]
    if conf:
        args += ["-c", json.dumps(conf, ensure_ascii=False)]
    start = time.monotonic()
    done = localenv.airflow(args, env, log, timeout=1800, check=False)
    ok = done.returncode == 0 and _last_run_succeeded(log)
    return ok, time.monotonic() - start


def _last_run_succeeded(log: Path) -> bool:
    text = log.read_text(errors="replace")
    tail = text[text.rfind("$ airflow dags test"):]
    return "state=success" in tail and "state=failed" not in tail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the previous demo state instead of starting clean")
    args = parser.parse_args(argv)

    started = time.monotonic()
    # The scenario calls bridge functions in this process: keep their INFO lines
    # in the Airflow log, not on the demo's screen.
    logging.getLogger("bridge").setLevel(logging.WARNING)
    if not args.keep and DEMO_DIR.exists():
        for child in ("sandbox", "hub.sqlite", "hub.sqlite-wal", "hub.sqlite-shm", "outbox", "journey_import"):
            path = DEMO_DIR / child
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    log = DEMO_DIR / "demo.log"
    log.write_text("")
    print("OA ⇄ CRM bridge demo", flush=True)
    print("  starting the CRM and OA simulators and a mail sink ...", flush=True)

    results: list[DagResult] = []
    with launcher.simulators(DEMO_DIR / "sandbox", seed=SEED, max_lifetime=3600) as sims:
        mail = mailsink.start(DEMO_DIR / "outbox")
        try:
            env = localenv.airflow_env(
                connections={**sims.connection_env(), **smtp_connection_env(mail.port)},
                data_dir=DEMO_DIR,
                extra={"BRIDGE__DEBOUNCE__QUIET_SECONDS": "0", "BRIDGE__JOURNEY__IMPORT_QUIET_SECONDS": "0"},
            )
            print("  preparing the local Airflow home (.airflow) ...", flush=True)
            if localenv.prepare_home(env, log):
                print("    metadata database migrated", flush=True)
            localenv.prepare_hub(env, log)
            for dag_id in dag_ids():
                notes = scenario.before(dag_id, sims, DEMO_DIR)
                print(f"  running {dag_id} ...", flush=True)
                ok, seconds = run_dag(dag_id, env, log, scenario.conf(dag_id))
                if ok:
                    notes += scenario.after(dag_id, sims, DEMO_DIR)
                results.append(DagResult(dag_id, ok, seconds, notes))
                print(f"    {'ok' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
                for note in notes:
                    print(f"    - {note}", flush=True)
        finally:
            mail.stop()

    total = time.monotonic() - started
    print("\nSummary")
    if not results:
        print("  no DAGs in dags/ yet: the simulators and Airflow home were prepared")
    for r in results:
        print(f"  {r.dag_id:<20} {'success' if r.ok else 'FAILED':<8} {r.seconds:6.0f} s")
    print("\nWhere the results are")
    print(f"  demo data folder   {DEMO_DIR}")
    print(f"  hub database       {DEMO_DIR / 'hub.sqlite'}")
    for label, sub in (("reports", "reports"), ("data-health docs", "data_docs"), ("migration reports", "migration")):
        if (DEMO_DIR / sub).exists():
            print(f"  {label:<18} {DEMO_DIR / sub}")
    print(f"  mail sent          {DEMO_DIR / 'outbox'} ({len(list((DEMO_DIR / 'outbox').glob('*.eml')))} messages)")
    print(f"  Airflow log        {log}")
    print(f"\nDemo finished in {total:.0f} s. `make airflow` opens the same bridge in the Airflow UI.")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
