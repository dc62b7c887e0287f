"""Shared fixtures: PostgreSQL availability, the simulators, an isolated data folder.

Area-specific fixtures live in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Quiet Great Expectations before anything imports it.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

PG_DSN = os.environ.get("BRIDGE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("BRIDGE_REQUIRE_PG") == "1"


def _pg_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg2

        conn = psycopg2.connect(PG_DSN, connect_timeout=3)
        conn.close()
        return None
    except Exception as exc:  # any failure means "not available"
        return f"PostgreSQL not reachable at {PG_DSN}: {exc.__class__.__name__}: {str(exc).strip()[:200]}"


_PG_STATUS: list[str | None] = []


def pg_unavailable_reason() -> str | None:
    if not _PG_STATUS:
        _PG_STATUS.append(_pg_reason())
    return _PG_STATUS[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if any(item.get_closest_marker("pg") for item in items):
        reason = pg_unavailable_reason()
    for item in items:
        if item.get_closest_marker("pg") and reason:
            if REQUIRE_PG:  # CI: a missing server is a failure, never a silent skip
                item.add_marker(pytest.mark.usefixtures("_require_pg_failure"))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def _require_pg_failure() -> None:
    pytest.fail("BRIDGE_REQUIRE_PG=1 but " + (pg_unavailable_reason() or "?"))


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The PostgreSQL DSN for tests marked ``pg`` (skipped or failed by the hook above)."""
    return PG_DSN


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated BRIDGE_DATA_DIR for one test."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Both simulators on free ports for the whole session (seeded demo world), stopped at the end."""
    from sandbox.launcher import simulators

    with simulators(tmp_path_factory.mktemp("sims"), seed=20261126, max_lifetime=3600) as running:
        yield running


@pytest.fixture(scope="session")
def airflow_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIRFLOW_HOME whose SQLite metadata DB is migrated once per session (copied by ``airflow_home``)."""
    from sandbox import localenv

    home = tmp_path_factory.mktemp("airflow-template")
    env = localenv.airflow_env(home=home, data_dir=home / "data")
    localenv.prepare_home(env, home / "setup.log")
    return home


@pytest.fixture
def airflow_home(tmp_path: Path, airflow_home_template: Path) -> Path:
    """A fresh, already migrated AIRFLOW_HOME for one test (pass it to ``localenv.airflow_env(home=...)``)."""
    import shutil

    home = tmp_path / "airflow"
    home.mkdir()
    for name in ("airflow.db", ".migrated"):
        shutil.copy2(airflow_home_template / name, home / name)
    return home
