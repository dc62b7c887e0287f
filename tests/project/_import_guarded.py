"""Import one DAG file with the network and databases blocked; print JSON facts.

Run as a subprocess by test_project_dags.py, so every DAG file is imported in a
clean interpreter: ``python _import_guarded.py PATH``.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sqlite3
import sys
import time

# Airflow itself may be imported before the guards: its own import is not the DAG's parse cost.
import airflow.sdk  # noqa: F401

attempts: list[str] = []


def _blocked(kind: str):  # type: ignore[no-untyped-def]
    def guard(*args, **kwargs):  # type: ignore[no-untyped-def]
        attempts.append(f"{kind}: {args[1:] if len(args) > 1 else args}")
        raise RuntimeError(f"{kind} at DAG parse time")

    return guard


socket.socket.connect = _blocked("socket.connect")  # type: ignore[method-assign]
socket.socket.connect_ex = _blocked("socket.connect_ex")  # type: ignore[method-assign]
socket.create_connection = _blocked("socket.create_connection")  # type: ignore[assignment]
sqlite3.connect = _blocked("sqlite3.connect")  # type: ignore[assignment]

try:
    import sqlalchemy

    sqlalchemy.create_engine = _blocked("sqlalchemy.create_engine")  # type: ignore[assignment]
except ImportError:  # pragma: no cover
    pass

path = sys.argv[1]
start = time.perf_counter()
error = None
dags = []
try:
    spec = importlib.util.spec_from_file_location("dagfile_under_test", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from airflow.sdk import DAG

    dags = [v.dag_id for v in vars(module).values() if isinstance(v, DAG)]
except Exception as exc:
    error = f"{exc.__class__.__name__}: {exc}"
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "error": error, "attempts": attempts, "dags": dags}))
