"""``make airflow``: the Airflow UI with the simulators and a local mail sink.

Starts the two simulators (seeded demo world), a local SMTP sink, and the
Airflow components one by one — api-server on 127.0.0.1, scheduler,
dag-processor, triggerer — rather than ``airflow standalone``, whose log
servers would listen on every interface. The log servers are not needed:
with the LocalExecutor the API server reads task logs from the local disk.
Prints the URL and the login; Ctrl-C stops everything it started, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import launcher, localenv

COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def smtp_connection_env(port: int) -> dict[str, str]:
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "bridge@example.com", "timeout": 10},
    }
    return {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(conn)}


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
            try:
                with urllib.request.urlopen(self.url + "/api/v2/monitor/health", timeout=3) as resp:  # noqa: S310
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
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

    def admin_password(self) -> str:
        path = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        for _ in range(50):
            if path.exists():
                return str(json.loads(path.read_text())["admin"])
            time.sleep(0.2)
        return "(see " + str(path) + ")"


@contextlib.contextmanager
def local_stack(api_port: int | None = None, seed: int = 20261126, data_dir: Path = localenv.DATA_DIR,
                home: Path = localenv.AIRFLOW_HOME, extra_env: Mapping[str, str] | None = None,
                sim_lifetime: int = 8 * 3600) -> Iterator[tuple[AirflowStack, launcher.Simulators, Path]]:
    """Simulators + mail sink + Airflow, all stopped on exit. Yields (stack, sims, outbox)."""
    from sandbox import mailsink

    outbox = data_dir / "outbox"
    port = api_port or launcher.free_port()
    with launcher.simulators(data_dir / "sandbox", seed=seed, max_lifetime=sim_lifetime, fresh=False) as sims:
        mail = mailsink.start(outbox)
        try:
            env = localenv.airflow_env(
                connections={**sims.connection_env(), **smtp_connection_env(mail.port)},
                home=home, data_dir=data_dir, api_port=port, extra=extra_env,
            )
            localenv.prepare_home(env, home / "logs" / "setup.log")
            localenv.prepare_hub(env, home / "logs" / "setup.log")
            stack = AirflowStack(env=env, log_dir=home / "logs" / "stack")
            stack.start()
            try:
                yield stack, sims, outbox
            finally:
                stack.stop()
        finally:
            mail.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.airflow_local", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("BRIDGE_AIRFLOW_PORT", "8080")))
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args(argv)
    print("Starting the simulators, a mail sink and Airflow (about a minute) ...", flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    with local_stack(api_port=args.port, seed=args.seed) as (stack, sims, outbox):
        print(f"\nAirflow UI        {stack.url}")
        print(f"Login             admin / {stack.admin_password()}")
        print(f"CRM simulator     {sims.crm.url}  (HubSpot CRM v3)")
        print(f"OA simulator      {sims.oa.url}  (Feishu approval v4)")
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
