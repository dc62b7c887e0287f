"""``make airflow``: the Airflow UI with the simulators and a local mail sink.

Starts the two simulators (seeded demo world), a local SMTP sink, and the
Airflow components one by one — api-server on 127.0.0.1, scheduler,
dag-processor, triggerer — rather than ``airflow standalone``, whose log
servers would listen on every interface. The log servers are not needed:
with the LocalExecutor the API server reads task logs from the local disk.

Before the API server starts: the demo users get their fixed passwords
(``localenv.write_demo_passwords``) and ``crm_default`` / ``oa_default`` /
``smtp_default`` are stored in the metadata database, pointing at the
simulators and the mail sink, so that Admin → Connections lists and tests them.
The user's own ``AIRFLOW__*`` / ``AIRFLOW_CONN_*`` variables win over all of it.
Prints the URL, the users and their passwords; Ctrl-C stops everything it
started, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import events_local, launcher, localenv

COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
STORED_CONNECTIONS = ("crm_default", "oa_default", "smtp_default")


def smtp_connection(port: int) -> dict[str, Any]:
    return {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "bridge@example.com", "timeout": 10},
    }


def smtp_connection_env(port: int) -> dict[str, str]:
    return {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp_connection(port))}


def stored_connections(crm_port: int, oa_port: int, mail_port: int) -> dict[str, dict[str, Any]]:
    """The local Connections as the Connections page's form stores them: the API base URL in Host and the port
    in its own field (Airflow 3.3's Test button needs a stored port: docs/connections.md)."""
    crm = {"conn_type": "hubspot_crm", "description": "HubSpot CRM 模拟器（本地演示，make airflow 每次启动时重置）", "host": "http://127.0.0.1",
           "port": crm_port, "login": launcher.CRM_CLIENT_ID, "password": launcher.CRM_CLIENT_SECRET,
           "extra": {"refresh_token": launcher.CRM_REFRESH_TOKEN}}
    oa = {"conn_type": "feishu_oa", "description": "飞书审批模拟器（本地演示，make airflow 每次启动时重置）", "host": "http://127.0.0.1",
          "port": oa_port, "login": launcher.OA_APP_ID, "password": launcher.OA_APP_SECRET, "extra": {}}
    smtp = {**smtp_connection(mail_port), "description": "本地邮件收件箱（data/outbox，make airflow 每次启动时重置）"}
    return {"crm_default": crm, "oa_default": oa, "smtp_default": smtp}


@dataclass
class AirflowStack:
    """Airflow components started as processes of the local venv."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.env["AIRFLOW__API__BASE_URL"]

    def start(self, components: Sequence[str] = tuple(COMPONENTS), wait_seconds: float = 180) -> AirflowStack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "PATH": f"{localenv.BIN}{os.pathsep}{self.env.get('PATH', '')}"}
        for name in components:
            log = (self.log_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own venv's airflow
                [str(localenv.BIN / "airflow"), *COMPONENTS[name]], env=env, cwd=localenv.ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"airflow {name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}")
            if launcher.answers_ok(self.url + "/api/v2/monitor/health", timeout=3):
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"Airflow API did not answer on {self.url} within {wait_seconds}s; see {self.log_dir}")

    def stop(self, grace: float = 20) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def passwords(self, wait_seconds: float = 10) -> dict[str, str]:
        """The simple auth manager's passwords: the demo ones (written before the start) and those Airflow
        generated for other configured users (waits up to ``wait_seconds`` for them)."""
        path = localenv.passwords_file(self.env)
        users = {name for name, _ in localenv.configured_users(self.env.get(localenv.USERS_VAR, ""))}
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                found = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                found = {}
            if users <= set(found) or time.monotonic() > deadline:
                return {str(k): str(v) for k, v in found.items()}
            time.sleep(0.2)

    def admin_password(self) -> str:
        return self.passwords().get(localenv.ADMIN_USER) or f"(see {localenv.passwords_file(self.env)})"


@contextlib.contextmanager
def local_stack(api_port: int | None = None, seed: int = 20261126, data_dir: Path = localenv.DATA_DIR,
                home: Path = localenv.AIRFLOW_HOME, extra_env: Mapping[str, str] | None = None,
                sim_lifetime: int = 8 * 3600) -> Iterator[tuple[AirflowStack, launcher.Simulators, Path]]:
    """Simulators + mail sink + Airflow, all stopped on exit. Yields (stack, sims, outbox).

    ``extra_env`` wins over every default (``make airflow`` passes the user's own AIRFLOW_* variables).
    crm_default, oa_default and smtp_default are stored in the metadata database (unless ``extra_env``
    defines them as ``AIRFLOW_CONN_*``); the demo users get their demo passwords."""
    from sandbox import mailsink

    outbox = data_dir / "outbox"
    port = api_port or launcher.free_port()
    with launcher.simulators(data_dir / "sandbox", seed=seed, max_lifetime=sim_lifetime, fresh=False) as sims:
        mail = mailsink.start(outbox)
        try:
            env = localenv.airflow_env(home=home, data_dir=data_dir, api_port=port, extra=extra_env)
            setup_log = home / "logs" / "setup.log"
            localenv.prepare_home(env, setup_log)
            localenv.prepare_hub(env, setup_log)
            localenv.store_connections(env, stored_connections(sims.crm.port, sims.oa.port, mail.port), setup_log)
            localenv.write_demo_passwords(env)
            events_local.start(env, sims, home / "logs" / "stack")  # Redis + events receiver (docs/events.md)
            stack = AirflowStack(env=env, log_dir=home / "logs" / "stack")
            stack.start()
            try:
                yield stack, sims, outbox
            finally:
                stack.stop()
        finally:
            events_local.stop_all()
            mail.stop()


def users_table(env: Mapping[str, str], passwords: Mapping[str, str]) -> list[str]:
    """Lines listing every configured user: password, Airflow role and the policy role it sees."""
    mapping, default = localenv.policy_roles()
    labels = {u.policy_role: u.label for u in localenv.demo_users()}
    lines = [f"  {'user':<17}{'password':<23}{'Airflow role':<14}policy role (settings ui.user_roles)"]
    for name, role in localenv.configured_users(env.get(localenv.USERS_VAR, "")):
        policy = mapping.get(name) or default or "?"
        lines.append(f"  {name:<17}{passwords.get(name, '(see the api-server log)'):<23}{role:<14}"
                     f"{policy} {labels.get(policy, '')}".rstrip())
    return lines


def api_port(environ: Mapping[str, str]) -> int:
    """The UI port: ``BRIDGE_AIRFLOW_PORT``, else the user's ``AIRFLOW__API__PORT``, else 8080."""
    raw = environ.get("BRIDGE_AIRFLOW_PORT") or environ.get("AIRFLOW__API__PORT") or "8080"
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"BRIDGE_AIRFLOW_PORT / AIRFLOW__API__PORT = {raw!r} is not a port number; "
                         f"e.g. BRIDGE_AIRFLOW_PORT=8090 make airflow") from None
    if not 1 <= port <= 65535:
        raise SystemExit(f"port {port} is out of range (1-65535); e.g. BRIDGE_AIRFLOW_PORT=8090 make airflow")
    return port


def launch_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's own Airflow variables for the stack; the API server's address follows the chosen port."""
    user_env = localenv.user_airflow_env(environ)
    for key in ("AIRFLOW__API__PORT", "AIRFLOW__API__BASE_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        user_env.pop(key, None)
    return user_env


def wallboard_lines(env: Mapping[str, str], base_url: str) -> list[str]:
    """The 大屏 URL and a demo kiosk link (``bridge kiosk create --replace``: the previous demo link is revoked)."""
    done = subprocess.run(  # noqa: S603 - our own venv's bridge command
        [str(localenv.BIN / "bridge"), "kiosk", "create", "--by", "make-airflow", "--label", "演示大屏（make airflow）",
         "--replace", "--base-url", base_url, "--json"],
        env=dict(env), cwd=localenv.ROOT, capture_output=True, text=True, timeout=120, check=False)
    link = str(json.loads(done.stdout)["url"]) if done.returncode == 0 else f"(bridge kiosk create failed: {done.stderr.strip()[:200]})"
    return [f"Wallboard 大屏    {base_url}/bridge/wallboard  (login as above; docs/ui.md)",
            f"Kiosk link        {link}  (no login; bridge kiosk revoke to withdraw)"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.airflow_local", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=None, help="UI port (default: BRIDGE_AIRFLOW_PORT or 8080)")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args(argv)
    port = args.port or api_port(os.environ)
    user_env = launch_env(os.environ)
    print("Starting the simulators, a mail sink and Airflow (about a minute) ...", flush=True)
    if user_env:
        print(f"Your own settings win over the defaults: {', '.join(sorted(user_env))}", flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    with local_stack(api_port=port, seed=args.seed, extra_env=user_env) as (stack, sims, outbox):
        print(f"\nAirflow UI        {stack.url}   (another port: BRIDGE_AIRFLOW_PORT=8090 make airflow)")
        print("Users             (README: Users and roles)")
        print("\n".join(users_table(stack.env, stack.passwords())))
        print(f"CRM simulator     {sims.crm.url}  (HubSpot CRM v3)")
        print(f"OA simulator      {sims.oa.url}  (Feishu approval v4)")
        stored = [cid for cid in STORED_CONNECTIONS if f"AIRFLOW_CONN_{cid.upper()}" not in stack.env]
        print(f"Connections       {', '.join(stored) or '-'} in the metadata DB, reset at every start "
              f"(Admin → Connections → Test; docs/connections.md)")
        print("\n".join(wallboard_lines(stack.env, stack.url)))
        print(f"Mail sink         {outbox}")
        print(f"Logs              {stack.log_dir}")
        print("\nPress Ctrl-C to stop everything.", flush=True)
        try:
            while not stop:
                time.sleep(1)
                for name, proc in stack.procs.items():
                    if proc.poll() is not None:
                        print(f"airflow {name} stopped (exit {proc.returncode}); see {stack.log_dir / (name + '.log')}")
                        stop = True
        except KeyboardInterrupt:
            pass
        print("\nStopping ...", flush=True)
    print("Stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
