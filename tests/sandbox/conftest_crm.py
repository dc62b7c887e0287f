"""Helpers for the CRM simulator tests: a real simulator process per test module and a small client.

Not a conftest (``tests/sandbox/conftest.py`` is shared); test modules import the
fixtures they use from here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import launcher

WORLD_SEED = 11
NOW_MS = 1_795_000_000_000  # a fixed "now" so seeded worlds are byte-identical between runs


class Crm:
    """A client of one running simulator: OAuth token handling plus the admin API."""

    def __init__(self, proc: launcher.SimProcess) -> None:
        self.proc = proc
        self.url = proc.url
        self.http = requests.Session()
        self.token: str | None = None

    # ------------------------------------------------------------ vendor API
    def fetch_token(self, **overrides: str) -> requests.Response:
        form = {"grant_type": "refresh_token", "client_id": launcher.CRM_CLIENT_ID,
                "client_secret": launcher.CRM_CLIENT_SECRET, "refresh_token": launcher.CRM_REFRESH_TOKEN,
                **overrides}
        return self.http.post(self.url + "/oauth/v1/token", data=form, timeout=10)

    def login(self) -> str:
        resp = self.fetch_token()
        assert resp.status_code == 200, resp.text
        self.token = resp.json()["access_token"]
        return self.token

    def call(self, method: str, path: str, json: Any = None, token: str | None = None,
             params: dict[str, Any] | None = None, timeout: float = 30, **kw: Any) -> requests.Response:
        if self.token is None and token is None:
            self.login()
        headers = {"authorization": f"Bearer {token or self.token}"}
        return self.http.request(method, self.url + path, json=json, params=params, headers=headers,
                                 timeout=timeout, **kw)

    def ok(self, method: str, path: str, json: Any = None, status: int = 200, **kw: Any) -> Any:
        resp = self.call(method, path, json, **kw)
        assert resp.status_code == status, f"{method} {path} -> {resp.status_code}: {resp.text[:500]}"
        return resp.json() if resp.content else None

    def search(self, object_type: str, body: dict[str, Any]) -> requests.Response:
        return self.call("POST", f"/crm/v3/objects/{object_type}/search", body)

    # ------------------------------------------------------------ admin API
    def admin(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = self.http.request(method, self.url + "/_sim" + path, json=body, timeout=300)
        assert resp.status_code == status, f"{method} /_sim{path} -> {resp.status_code}: {resp.text[:500]}"
        return resp.json() if resp.content else None

    def reset(self, seed: int | None = WORLD_SEED, **sizes: Any) -> None:
        """Empty portal, then (unless seed is None) a small deterministic world."""
        self.admin("POST", "/reset")
        if seed is not None:
            self.admin("POST", "/seed", {"seed": seed, "now_ms": NOW_MS, **sizes})

    def dump(self, object_type: str, archived: str = "false") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = "0"
        while True:
            page = self.admin("GET", f"/objects/{object_type}?limit=10000&after={after}&archived={archived}")
            out.extend(page["results"])
            if "paging" not in page:
                return out
            after = page["paging"]["next"]["after"]


def start_crm(tmp: Path, *args: str, seed: int | None = WORLD_SEED) -> launcher.SimProcess:
    proc = launcher.make("crm", tmp, args=list(args), max_lifetime=900)
    proc.start(wait_seconds=60)
    if seed is not None:
        proc.admin("POST", "/_sim/seed", {"seed": seed, "now_ms": NOW_MS})
    return proc


@contextlib.contextmanager
def running_crm(tmp: Path, *args: str, seed: int | None = WORLD_SEED) -> Iterator[Crm]:
    proc = start_crm(tmp, *args, seed=seed)
    try:
        yield Crm(proc)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crm]:
    """A simulator for the module: demo world of seed 11 (fixed now), rate limits off."""
    with running_crm(tmp_path_factory.mktemp("crm"), "--rate-limits", "off") as client:
        yield client


def specs_dir() -> Path | None:
    """``BRIDGE_SPECS_DIR``, else the copy in ``sandbox/specs``; None when absent."""
    raw = os.environ.get("BRIDGE_SPECS_DIR")
    path = Path(raw) if raw else Path(__file__).resolve().parents[2] / "sandbox" / "specs"
    return path if (path / "hubspot").is_dir() else None
