"""Start and stop the two simulators as real processes on free 127.0.0.1 ports.

Used by ``make demo``, ``make airflow``, the benchmarks and the pytest
fixtures (``tests/conftest.py``). Every process is started with a
``--max-lifetime`` so an orphan exits by itself, and is stopped by its PID
by whoever started it.

Command line::

    python -m sandbox.launcher up [--data-dir data/sandbox] [--seed N] [--env-file PATH]

starts both, prints their URLs and the Airflow Connection variables, and
stops them on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Documented default credentials of the simulators (local use only).
CRM_CLIENT_ID = "bridge-local-client"
CRM_CLIENT_SECRET = "bridge-local-secret"  # ruff: ignore[hardcoded-password-string] - simulator default, documented
CRM_REFRESH_TOKEN = "bridge-local-refresh-token"  # ruff: ignore[hardcoded-password-string]
CRM_PRIVATE_APP_TOKEN = "pat-local-bridge-private-app-token"  # ruff: ignore[hardcoded-password-string]
OA_APP_ID = "cli_bridge_local"
OA_APP_SECRET = "bridge-local-app-secret"  # ruff: ignore[hardcoded-password-string]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SimProcess:
    name: str  # crm | oa
    port: int
    db_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def admin(self, method: str, path: str, body: object | None = None, timeout: float = 600) -> object:
        """Call the simulator's admin API (``/_sim/...``) and return the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,  # ruff: ignore[suspicious-url-open-usage] - local URL
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # ruff: ignore[suspicious-url-open-usage]
            raw = resp.read()
        return json.loads(raw) if raw else None

    def start(self, wait_seconds: float = 60) -> SimProcess:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", f"sandbox.{self.name}", "--host", "127.0.0.1", "--port", str(self.port),
               "--db", str(self.db_path), *self.args]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,  # ruff: ignore[subprocess-without-shell-equals-true]
                                     env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator {self.name} exited with {self.proc.returncode}; see {self.log_path}")
            if answers_ok(self.url + "/_sim/health", timeout=2):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"simulator {self.name} did not answer on {self.url} within {wait_seconds}s; see {self.log_path}")

    def stop(self, grace: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=grace)


def oa_instances(oa: SimProcess, form: str, origin: str | None = None) -> list[dict[str, Any]]:
    """Every instance of one OA form from the OA simulator's admin listing, its form parsed into ``widgets``
    (widget id → value). ``origin``: ``api`` (filed through the API: the bridge), ``admin`` (people), None (all)."""
    import urllib.parse

    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        query: dict[str, object] = {"approval": form, "offset": offset, "limit": 1000}
        if origin:
            query["origin"] = origin
        page = oa.admin("GET", f"/_sim/instances?{urllib.parse.urlencode(query)}")
        if not isinstance(page, dict):
            raise RuntimeError(f"OA simulator: unexpected instance listing {page!r:.200}")
        for item in page["items"]:
            item["widgets"] = {w["id"]: w.get("value") for w in json.loads(item["form"])}
            out.append(item)
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return out


@dataclass
class Simulators:
    crm: SimProcess
    oa: SimProcess

    def connection_env(self) -> dict[str, str]:
        """Airflow Connection environment variables pointing the bridge at the simulators."""
        return connection_env(self.crm.url, self.oa.url)

    def stop(self) -> None:
        self.crm.stop()
        self.oa.stop()

    @contextlib.contextmanager
    def as_connections(self) -> Iterator[None]:
        """The bridge's Connections (environment variables) point at these simulators inside the block."""
        env = self.connection_env()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def answers_ok(url: str, timeout: float) -> bool:
    """Whether a local health URL answers 200 now (False while the server does not answer yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # ruff: ignore[suspicious-url-open-usage]
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def connection_env(crm_url: str, oa_url: str) -> dict[str, str]:
    crm = {
        "conn_type": "hubspot_crm",
        "host": crm_url,
        "login": CRM_CLIENT_ID,
        "password": CRM_CLIENT_SECRET,
        "extra": {"refresh_token": CRM_REFRESH_TOKEN},
    }
    oa = {"conn_type": "feishu_oa", "host": oa_url, "login": OA_APP_ID, "password": OA_APP_SECRET}
    return {"AIRFLOW_CONN_CRM_DEFAULT": json.dumps(crm), "AIRFLOW_CONN_OA_DEFAULT": json.dumps(oa)}


def make(name: str, data_dir: Path, port: int | None = None, args: Sequence[str] = (),
         max_lifetime: int = 3600) -> SimProcess:
    return SimProcess(
        name=name,
        port=port or free_port(),
        db_path=data_dir / f"{name}.sqlite",
        log_path=data_dir / f"{name}.log",
        args=["--max-lifetime", str(max_lifetime), *args],
    )


@contextlib.contextmanager
def simulators(data_dir: Path, seed: int | None = None, crm_args: Sequence[str] = (), oa_args: Sequence[str] = (),
               max_lifetime: int = 3600, fresh: bool = True) -> Iterator[Simulators]:
    """Both simulators, started on free ports, stopped on exit. ``fresh`` removes old databases."""
    data_dir.mkdir(parents=True, exist_ok=True)
    seed_args = ["--seed", str(seed)] if seed is not None else []
    crm = make("crm", data_dir, args=[*seed_args, *crm_args], max_lifetime=max_lifetime)
    oa = make("oa", data_dir, args=[*seed_args, *oa_args], max_lifetime=max_lifetime)
    if fresh:
        for p in (crm.db_path, oa.db_path):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(p) + suffix).unlink()
    with started(crm, oa) as sims:
        yield sims


@contextlib.contextmanager
def started(crm: SimProcess, oa: SimProcess) -> Iterator[Simulators]:
    """Both simulators started, both stopped on exit (also when the second one fails to start)."""
    sims = Simulators(crm=crm, oa=oa)
    try:
        crm.start()
        oa.start()
        yield sims
    finally:
        sims.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.launcher", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start both simulators until Ctrl-C")
    up.add_argument("--data-dir", type=Path, default=ROOT / "data" / "sandbox")
    up.add_argument("--seed", type=int, default=None, help="seed demo data (default: the simulators' own)")
    up.add_argument("--max-lifetime", type=int, default=8 * 3600)
    up.add_argument("--env-file", type=Path, help="also write the Connection variables to this file")
    args = parser.parse_args(argv)

    with simulators(args.data_dir, seed=args.seed, max_lifetime=args.max_lifetime, fresh=False) as sims:
        env = sims.connection_env()
        print(f"CRM simulator (HubSpot CRM v3):      {sims.crm.url}   pid {sims.crm.pid}")
        print(f"OA simulator (Feishu approval v4):   {sims.oa.url}   pid {sims.oa.pid}")
        for k, v in env.items():
            print(f"export {k}='{v}'")
        if args.env_file:
            args.env_file.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
