"""Helpers of the hook tests: real simulators over HTTP and Connections in the environment.

Not a conftest: test modules import what they use from here
(``from tests.hooks.hooks_support import ...``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import launcher

_ids = itertools.count(1)


class Sim:
    """A running simulator and its admin API."""

    def __init__(self, proc: launcher.SimProcess) -> None:
        self.proc = proc
        self.url = proc.url
        self.http = requests.Session()

    def admin(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        resp = self.http.request(method, f"{self.url}/_sim{path}", json=body, params=params, timeout=120)
        assert resp.status_code < 400, f"admin {method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json() if resp.content else None

    def fault(self, **rule: Any) -> None:
        self.admin("POST", "/faults", rule)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.admin("GET", "/stats")
        return out

    def requests_to(self, key: str) -> int:
        """Requests the simulator saw on one route (``"POST /crm/v3/objects/deals/search"``)."""
        return int(self.stats()["requests"].get(key, 0))


@contextlib.contextmanager
def start_sim(name: str, data_dir: Path, *args: str) -> Iterator[Sim]:
    proc = launcher.make(name, data_dir, args=list(args), max_lifetime=900)
    for suffix in ("", "-wal", "-shm"):
        Path(str(proc.db_path) + suffix).unlink(missing_ok=True)
    proc.start()
    try:
        yield Sim(proc)
    finally:
        proc.stop()


def connection(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> str:
    """Register an Airflow Connection in the environment; return its id."""
    conn_id = f"hooktest_{next(_ids)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def crm_conn(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "hubspot_crm",
        "host": url,
        "login": launcher.CRM_CLIENT_ID,
        "password": launcher.CRM_CLIENT_SECRET,
        "extra": {"refresh_token": launcher.CRM_REFRESH_TOKEN, "backoff_base": 0.01, **extra},
    }


def oa_conn(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "feishu_oa",
        "host": url,
        "login": launcher.OA_APP_ID,
        "password": launcher.OA_APP_SECRET,
        "extra": {"backoff_base": 0.01, **extra},
    }
