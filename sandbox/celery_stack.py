"""The scale-out stack on one machine: Airflow with the CeleryExecutor, Redis and PostgreSQL.

The same shape as ``docker-compose.yaml`` (api-server, scheduler,
dag-processor, Celery worker; PostgreSQL for the Airflow metadata and for the
hub, Redis as the Celery broker), but as processes of the local venv against
the local PostgreSQL and Redis, each run in databases of its own:

* :func:`provisioned_backends` creates two uniquely named PostgreSQL databases
  (metadata, hub) and claims an empty Redis database number; it drops and
  flushes them on exit, also after a failure, and first removes what a
  killed earlier run left behind (:func:`drop_stale`);
* :func:`celery_env` turns a ``localenv.airflow_env`` into the CeleryExecutor
  set-up (broker, result backend, a queue of its own, the hub Connection);
* :class:`CeleryStack` starts the components (nothing binds a public
  interface: the API server listens on 127.0.0.1, the scheduler and the worker
  run with ``--skip-serve-logs``), waits until the API answers and the worker
  is ready, and stops everything by process group;
* :class:`AirflowApi` is the small REST client (token, unpause, trigger,
  wait, task instances) the scale-out test drives the runs with.

Used by ``tests/scaleout/test_scaleout_celery.py``; see ``docs/scaleout.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from sandbox import launcher, localenv
from sandbox.airflow_local import AirflowStack

REDIS_CLAIM_KEY = "bridge:scaleout:claim"
FINAL_RUN_STATES = frozenset({"success", "failed"})


# ---------------------------------------------------------------- PostgreSQL + Redis


@dataclass(frozen=True)
class Backends:
    """The databases of one scale-out run: two PostgreSQL databases and one Redis database number."""

    pg_admin_dsn: str  # libpq/SQLAlchemy URL of a database the admin can connect to (e.g. .../postgres)
    metadata_db: str
    hub_db: str
    redis_host: str
    redis_port: int
    redis_db: int

    def pg_url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        url = make_url(self.pg_admin_dsn).set(drivername=driver, database=database)
        return url.render_as_string(hide_password=False)

    @property
    def metadata_url(self) -> str:
        return self.pg_url(self.metadata_db)

    @property
    def hub_url(self) -> str:
        return self.pg_url(self.hub_db)

    @property
    def broker_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def hub_connection(self) -> str:
        """``AIRFLOW_CONN_BRIDGE_HUB``: the hub as a postgres Connection in Airflow's JSON form."""
        url = make_url(self.pg_admin_dsn)
        fields: dict[str, Any] = {"conn_type": "postgres", "host": url.host or "127.0.0.1",
                                  "port": url.port or 5432, "schema": self.hub_db, "login": url.username or "postgres"}
        if url.password:
            fields["password"] = url.password
        return json.dumps(fields)


def pg_admin(dsn: str, statement: str) -> None:
    """One statement outside a transaction (CREATE / DROP DATABASE) on the server of ``dsn``."""
    import psycopg2

    conn = psycopg2.connect(make_url(dsn).set(drivername="postgresql").render_as_string(hide_password=False),
                            connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    return f'"{name}"'


def drop_database(dsn: str, name: str) -> None:
    pg_admin(dsn, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


def claim_redis_db(host: str, port: int, tag: str) -> int:
    """An empty Redis database number, marked as ours (``SET NX``) so a parallel run picks another one."""
    import redis

    admin = redis.Redis(host=host, port=port, db=0, socket_timeout=5)
    try:
        answer: Any = admin.config_get("databases")
        count = int(answer.get("databases", 16))
    except redis.ResponseError:  # CONFIG disabled: assume the default
        count = 16
    finally:
        admin.close()
    for number in range(count - 1, 0, -1):  # db 0 is everyone's default: never ours
        client = redis.Redis(host=host, port=port, db=number, socket_timeout=5)
        try:
            if not client.set(REDIS_CLAIM_KEY, tag, nx=True):
                continue
            if client.dbsize() == 1:
                return number
            client.delete(REDIS_CLAIM_KEY)  # someone else's data lives here
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database on {host}:{port} (checked 1..{count - 1})")


def _tag_alive(tag: str) -> bool:
    """Whether the process that made ``<pid>_<hex>`` still runs (on this machine)."""
    head = tag.split("_", 1)[0]
    if not head.isdigit():
        return True  # not ours to judge
    try:
        os.kill(int(head), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_stale(pg_admin_dsn: str, redis_host: str, redis_port: int, prefix: str = "bridge_scaleout") -> list[str]:
    """Remove what a killed run left behind: its databases and its Redis claim, when its process is gone.

    Only for servers on this machine (the pid in a name means nothing elsewhere).
    """
    import psycopg2
    import redis

    removed: list[str] = []
    if make_url(pg_admin_dsn).host in ("127.0.0.1", "localhost", "::1", None):
        pattern = re.compile(rf"^{re.escape(prefix)}_(?:meta|hub)_(\d+_[0-9a-f]+)$")
        conn = psycopg2.connect(make_url(pg_admin_dsn).set(drivername="postgresql")
                                .render_as_string(hide_password=False), connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
                names = [str(row[0]) for row in cur.fetchall()]
        finally:
            conn.close()
        for name in names:
            found = pattern.match(name)
            if found and not _tag_alive(found.group(1)):
                drop_database(pg_admin_dsn, name)
                removed.append(name)
    if redis_host in ("127.0.0.1", "localhost", "::1"):
        for number in range(1, 16):
            client = redis.Redis(host=redis_host, port=redis_port, db=number, socket_timeout=5)
            try:
                owner: Any = client.get(REDIS_CLAIM_KEY)
                if owner is not None and not _tag_alive(owner.decode()):
                    client.flushdb()
                    removed.append(f"redis db {number}")
            except redis.ResponseError:  # fewer databases configured
                break
            finally:
                client.close()
    return removed


def release_redis_db(host: str, port: int, number: int, tag: str) -> None:
    """Empty the claimed database (broker queues, bindings, our claim), if it is still ours."""
    import redis

    client = redis.Redis(host=host, port=port, db=number, socket_timeout=5)
    try:
        owner: Any = client.get(REDIS_CLAIM_KEY)
        if owner is None or owner.decode() == tag:
            client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def provisioned_backends(pg_admin_dsn: str, redis_host: str = "127.0.0.1", redis_port: int = 6379,
                         prefix: str = "bridge_scaleout") -> Iterator[Backends]:
    """Fresh metadata and hub databases and an empty Redis database; all removed on exit."""
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    names = (f"{prefix}_meta_{tag}", f"{prefix}_hub_{tag}")
    drop_stale(pg_admin_dsn, redis_host, redis_port, prefix)
    created: list[str] = []
    redis_db: int | None = None
    try:
        for name in names:
            drop_database(pg_admin_dsn, name)
            pg_admin(pg_admin_dsn, f"CREATE DATABASE {_quoted(name)}")
            created.append(name)
        redis_db = claim_redis_db(redis_host, redis_port, tag)
        yield Backends(pg_admin_dsn=pg_admin_dsn, metadata_db=names[0], hub_db=names[1], redis_host=redis_host,
                       redis_port=redis_port, redis_db=redis_db)
    finally:
        errors: list[str] = []
        for name in created:
            try:
                drop_database(pg_admin_dsn, name)
            except Exception as exc:  # keep cleaning the rest
                errors.append(f"drop {name}: {exc}")
        if redis_db is not None:
            try:
                release_redis_db(redis_host, redis_port, redis_db, tag)
            except Exception as exc:
                errors.append(f"flush redis db {redis_db}: {exc}")
        if errors:
            raise RuntimeError("scale-out clean-up incomplete: " + "; ".join(errors))


# ---------------------------------------------------------------- Airflow environment


def celery_env(base: Mapping[str, str], backends: Backends, queue: str, concurrency: int = 2) -> dict[str, str]:
    """The environment of every component: CeleryExecutor on Redis, PostgreSQL metadata and hub.

    Scheduled runs are switched off (``use_job_schedule``): the caller triggers
    each run, so what a run sees does not depend on the wall-clock minute.
    """
    env = dict(base)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": backends.metadata_url,
            "AIRFLOW__CELERY__BROKER_URL": backends.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + backends.pg_url(backends.metadata_db, driver="postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            # The first publish to Redis can take more than the 1 s default on a busy 2-core machine.
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "15",
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            # Every task goes to this run's own queue, served only by this run's worker.
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_BRIDGE_HUB": backends.hub_connection(),
        }
    )
    return env


def celery_components(queue: str, worker_name: str, concurrency: int = 2) -> dict[str, list[str]]:
    """``airflow`` arguments per component; none of them serves logs or binds a public interface."""
    return {
        "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        "celery-worker": ["celery", "worker", "--concurrency", str(concurrency), "--queues", queue,
                          "--celery-hostname", worker_name, "--skip-serve-logs", "--without-mingle",
                          "--without-gossip"],
    }


@dataclass
class CeleryStack(AirflowStack):
    """api-server, scheduler, dag-processor and one Celery worker, each in its own process group.

    Each component runs under coreutils ``timeout`` (when present) so that a
    killed test run cannot leave them behind for longer than ``max_lifetime``.
    """

    components: dict[str, list[str]] = field(default_factory=dict)
    max_lifetime: int = 900

    def start(self, components: Sequence[str] = (), wait_seconds: float = 180) -> CeleryStack:
        names = list(components or self.components)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "PATH": f"{localenv.BIN}{os.pathsep}{self.env.get('PATH', '')}"}
        guard = shutil.which("timeout")
        for name in names:
            cmd = [str(localenv.BIN / "airflow"), *self.components[name]]
            if guard:
                cmd = [guard, "--kill-after=15", str(self.max_lifetime), *cmd]
            with (self.log_dir / f"{name}.log").open("ab") as log:
                self.procs[name] = subprocess.Popen(  # noqa: S603 - our own venv's airflow
                    cmd, env=env, cwd=localenv.ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        deadline = time.monotonic() + wait_seconds
        api_ok = worker_ok = False
        while time.monotonic() < deadline:
            self._check_alive()
            api_ok = api_ok or self._api_healthy()
            worker_ok = worker_ok or "celery-worker" not in self.procs or self.worker_ready()
            if api_ok and worker_ok:
                return self
            time.sleep(1)
        self.stop()
        missing = [what for what, ok in (("the API", api_ok), ("the Celery worker", worker_ok)) if not ok]
        raise RuntimeError(f"{' and '.join(missing)} not ready within {wait_seconds:.0f}s; see {self.log_dir}\n"
                           + self.log_tails())

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tails = self.log_tails()
                self.stop()
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}\n{tails}")

    def _api_healthy(self) -> bool:
        return launcher.answers_ok(self.url + "/api/v2/monitor/health", timeout=3)

    def worker_ready(self) -> bool:
        """Celery prints ``celery@<name> ready.`` once it consumes from the broker."""
        log = self.log_dir / "celery-worker.log"
        return log.exists() and " ready." in log.read_text(errors="replace")

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure messages."""
        out = []
        for name in self.procs or self.components:
            tail = self.log_text(name).splitlines()[-lines:]
            out.append(f"----- {name}.log (last {len(tail)} lines) -----\n" + "\n".join(tail))
        return "\n".join(out)


# ---------------------------------------------------------------- REST client


class AirflowApiError(RuntimeError):
    """An Airflow REST call failed; the message has the method, path, status and body."""


@dataclass
class AirflowApi:
    """The few REST calls the scale-out run needs (``/auth/token`` then ``/api/v2``)."""

    base_url: str
    username: str
    password: str
    _token: str | None = None

    def _call(self, method: str, path: str, body: object | None = None, auth: bool = True) -> Any:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if auth:
            headers["authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - local API server
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from exc
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            answer = self._call("POST", "/auth/token", {"username": self.username, "password": self.password},
                                auth=False)
            self._token = str(answer["access_token"])
        return self._token

    def dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}"))

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has serialised the DAG (the API answers 404 before)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowApiError as exc:
                if "HTTP 404" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/api/v2/dags/{urllib.parse.quote(dag_id)}", {"is_paused": paused})

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> str:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        answer = self._call("POST", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns", body)
        return str(answer["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/"
                                      f"{urllib.parse.quote(run_id)}"))

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The final state of a run (``success`` / ``failed``), or the last state seen at the deadline."""
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = str(self.run(dag_id, run_id)["state"])
            if state in FINAL_RUN_STATES:
                return state
            time.sleep(1)
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self._call("GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/"
                                   f"{urllib.parse.quote(run_id)}/taskInstances?limit=100")
        return list(answer["task_instances"])


__all__ = [
    "AirflowApi",
    "AirflowApiError",
    "Backends",
    "CeleryStack",
    "celery_components",
    "celery_env",
    "claim_redis_db",
    "drop_stale",
    "provisioned_backends",
    "release_redis_db",
]
