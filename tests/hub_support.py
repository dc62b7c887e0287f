"""Hub files for the tests: a SQLite hub migrated once per session, which each test copies."""

from __future__ import annotations

from pathlib import Path

from bridge.hub import engine as hub_engine


def migrated_sqlite_hub(path: Path) -> Path:
    """``path``, a new SQLite hub upgraded to the head revision (its engine disposed: the file can be copied)."""
    url = f"sqlite:///{path}"
    hub_engine.upgrade(url)
    hub_engine.get_engine(url).dispose()
    return path
