"""Helpers of the hook tests: real simulators over HTTP and Connections in the environment.

Not a conftest: test modules import what they use from here
(``from tests.hooks.hooks_support import ...``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from sandbox import launcher

_ids = itertools.count(1)
Subject = TypeVar("Subject")
Result = TypeVar("Result")

RATE_LIMITS_OFF = ("--rate-limits", "off")
SEEDED = ("--seed", "20261126")
# What a proxy or gateway answers with 200 instead of the vendor's JSON: the fault kind, and the words of the error.
PROXY_PAGES = pytest.mark.parametrize(
    ("kind", "text"), [("html_200", "HTML page"), ("malformed_json", "malformed JSON")]
)


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

    def reset(self, *setup: tuple[str, str, Any]) -> None:
        """The start of a test: no faults, then the ``setup`` admin calls (method, path, body), then the
        counters at zero (so a test counts only its own requests)."""
        self.admin("DELETE", "/faults")
        for method, path, body in setup:
            self.admin(method, path, body)
        self.admin("POST", "/stats/reset")

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


def sim_fixture(name: str, label: str, *args: str) -> Any:
    """A module-scoped fixture named ``name`` ("crm" or "oa"): that simulator, started with ``args`` in a
    temporary directory of its own, so each test module talks to a server no other module touched."""

    def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
        with start_sim(name, Path(tmp_path_factory.mktemp(label)), *args) as sim:
            yield sim

    return pytest.fixture(scope="module", name=name)(running)


def connection(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> str:
    """Register an Airflow Connection in the environment; return its id."""
    conn_id = f"hooktest_{next(_ids)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def sim_conn(conn_type: str, url: str, credentials: tuple[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    """A Connection to a simulator with its known credentials; retries back off 10 ms so tests stay fast."""
    login, password = credentials
    return {
        "conn_type": conn_type,
        "host": url,
        "login": login,
        "password": password,
        "extra": {"backoff_base": 0.01, **extra},
    }


def crm_conn(url: str, **extra: Any) -> dict[str, Any]:
    credentials = (launcher.CRM_CLIENT_ID, launcher.CRM_CLIENT_SECRET)
    return sim_conn("hubspot_crm", url, credentials, {"refresh_token": launcher.CRM_REFRESH_TOKEN, **extra})


def oa_conn(url: str, **extra: Any) -> dict[str, Any]:
    return sim_conn("feishu_oa", url, (launcher.OA_APP_ID, launcher.OA_APP_SECRET), extra)


def crm_hook(crm: Sim, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> CrmHook:
    """A CrmHook on a fresh Connection to ``crm`` (``extra`` overrides the Connection's extras)."""
    return CrmHook(connection(monkeypatch, crm_conn(crm.url, **extra)))


def oa_hook(oa: Sim, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> OaHook:
    """An OaHook on a fresh Connection to ``oa`` (``extra`` overrides the Connection's extras)."""
    return OaHook(connection(monkeypatch, oa_conn(oa.url, **extra)))


def all_at_once(
    threads: int, prepare: Callable[[], Subject], call: Callable[[Subject], Result]
) -> tuple[list[Result], list[BaseException]]:
    """Run ``call`` in ``threads`` threads released together, each on its own ``prepare()`` (a hook), and
    return what the calls gave and what they raised: the concurrency the shared token cache must survive."""
    barrier = threading.Barrier(threads, timeout=30)
    results: list[Result] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            subject = prepare()
            barrier.wait()
            results.append(call(subject))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return results, errors
