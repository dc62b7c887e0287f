"""Fixtures of the reliability suite: the sync tests' worlds (their own simulators, rate limits off).

``c2o`` / ``o2c`` (``tests/sync``) give each test empty simulators, a migrated
SQLite hub and hooks pointed at the simulators; the session's simulators here
are separate from the sync tests' so fault rules never meet their tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.sync.sync_c2o_world import c2o, c2o_factory, c2o_hub_template, c2o_sims  # noqa: F401
from tests.sync.sync_o2c_world import o2c  # noqa: F401

from bridge.hooks._auth import TokenCache


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    """Token counts are per test: no access token survives from an earlier test."""
    TokenCache.clear_all()
    yield
    TokenCache.clear_all()
