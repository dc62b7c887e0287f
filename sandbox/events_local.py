"""The event path of the local stack (``make airflow``): a private Redis, the receiver, the simulators wired to it.

:func:`start` runs ``redis-server`` and ``python -m bridge.events.serve`` on free
loopback ports, puts ``AIRFLOW_CONN_BRIDGE_EVENTS_REDIS`` into the Airflow
environment (the triggerer's AssetWatchers listen there), and registers the
receiver with both simulators: the OA simulator's approval events (encrypted
and signed) and the CRM simulator's webhooks (signature v3). The receiver gets
the simulators' Connections with the event secrets in their extras (the
simulator defaults below, public like the other simulator credentials).
With ``BRIDGE_FEISHU_EVENTS=long_connection`` the OA events come over Feishu's
long connection instead: ``bridge events listen`` runs as one more process and
the OA simulator pushes to it over a WebSocket (no request URL).
:func:`stop_all` stops what was started, by PID. Without ``redis-server`` the
events are off and polling does the work, as before.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import launcher
from sandbox.oa.app import VERIFICATION_TOKEN

WEBHOOK_CLIENT_SECRET = "bridge-local-webhook-secret"  # ruff: ignore[hardcoded-password-string] - simulator default, documented
ENCRYPT_KEY = "bridge-local-encrypt-key"
CRM_APP_ID = "4242"
CRM_PORTAL_ID = "242000042"


def receiver_connections(crm_url: str, oa_url: str) -> dict[str, str]:
    """The simulators' Connections with the event secrets in their extras (docs/events.md)."""
    env = launcher.connection_env(crm_url, oa_url)
    crm, oa = json.loads(env["AIRFLOW_CONN_CRM_DEFAULT"]), json.loads(env["AIRFLOW_CONN_OA_DEFAULT"])
    crm["extra"] = {**crm.get("extra", {}), "webhook_client_secret": WEBHOOK_CLIENT_SECRET,
                    "webhook_app_id": CRM_APP_ID, "portal_id": CRM_PORTAL_ID}
    oa["extra"] = {**oa.get("extra", {}), "verification_token": VERIFICATION_TOKEN, "encrypt_key": ENCRYPT_KEY,
                   "tenant_key": "sandbox-tenant"}
    return {"AIRFLOW_CONN_CRM_DEFAULT": json.dumps(crm), "AIRFLOW_CONN_OA_DEFAULT": json.dumps(oa)}


@dataclass
class EventsStack:
    receiver_url: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sims: launcher.Simulators | None = None

    def stop(self) -> None:
        if self.sims is not None:
            for sim, path in ((self.sims.oa, "/_sim/callback"), (self.sims.crm, "/_sim/webhooks")):
                with contextlib.suppress(OSError):
                    sim.admin("DELETE", path, timeout=5)
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []


_STARTED: list[EventsStack] = []


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # ruff: ignore[suspicious-url-open-usage] - loopback
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start(env: dict[str, str], sims: launcher.Simulators, log_dir: Path) -> EventsStack:
    """Start Redis and the receiver, wire the simulators; adds the Redis Connection to ``env``."""
    stack = EventsStack(sims=sims)
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        print("Events            off: redis-server not installed (polling only; docs/events.md)", flush=True)
        return stack
    _STARTED.append(stack)
    log_dir.mkdir(parents=True, exist_ok=True)
    redis_port, receiver_port = launcher.free_port(), launcher.free_port()
    stack.procs.append(subprocess.Popen(  # noqa: S603 - the system's redis-server, loopback only
        [redis_bin, "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    env["AIRFLOW_CONN_BRIDGE_EVENTS_REDIS"] = json.dumps({"conn_type": "redis", "host": "127.0.0.1",
                                                          "port": redis_port})
    receiver_env = {**env, **receiver_connections(sims.crm.url, sims.oa.url)}
    log = (log_dir / "events-receiver.log").open("ab")
    stack.procs.append(subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "bridge.events.serve", "--host", "127.0.0.1", "--port", str(receiver_port)],
        env=receiver_env, stdout=log, stderr=subprocess.STDOUT))
    stack.receiver_url = f"http://127.0.0.1:{receiver_port}"
    _wait_http(stack.receiver_url + "/events/health", 60)
    if env.get("BRIDGE_FEISHU_EVENTS", "webhook") == "long_connection":
        _listen(stack, receiver_env, log_dir, sims)
    else:
        sims.oa.admin("POST", "/_sim/callback", {"url": stack.receiver_url + "/events/feishu", "all_codes": True,
                                                  "delivery": {"encrypt_key": ENCRYPT_KEY}})
    sims.crm.admin("POST", "/_sim/webhooks", {"url": stack.receiver_url + "/events/hubspot",
                                               "client_secret": WEBHOOK_CLIENT_SECRET})
    print(f"Events receiver   {stack.receiver_url}/events/health  (Redis 127.0.0.1:{redis_port}; docs/events.md)",
          flush=True)
    return stack


def _connected(sims: launcher.Simulators) -> bool:
    view = sims.oa.admin("GET", "/_sim/longconn")
    return isinstance(view, dict) and int(view.get("connections", 0)) > 0


def _listen(stack: EventsStack, env: dict[str, str], log_dir: Path, sims: launcher.Simulators) -> None:
    """``bridge events listen`` against the OA simulator; long-connection mode switched on once it is connected."""
    log = (log_dir / "events-longconn.log").open("ab")
    stack.procs.append(subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "events", "listen"], env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while not _connected(sims):
        if time.monotonic() > deadline or stack.procs[-1].poll() is not None:
            raise RuntimeError(f"bridge events listen did not connect (see {log_dir / 'events-longconn.log'})")
        time.sleep(0.2)
    sims.oa.admin("POST", "/_sim/longconn", {"all_codes": True})
    print("Events            Feishu over the long connection (bridge events listen)", flush=True)


def stop_all() -> None:
    while _STARTED:
        _STARTED.pop().stop()


def status(stack: EventsStack) -> dict[str, Any]:
    with urllib.request.urlopen(stack.receiver_url + "/events/health", timeout=5) as resp:  # ruff: ignore[suspicious-url-open-usage]
        answer: dict[str, Any] = json.loads(resp.read())
    return answer
