"""The scale-out run needs PostgreSQL and Redis: skipped with the reason when either is missing.

With ``BRIDGE_REQUIRE_PG=1`` (CI, ``.ci/run``) a missing server fails the
test instead, like the ``pg`` tests of ``tests/conftest.py``.
"""

from __future__ import annotations

import os

import pytest
from tests.conftest import PG_DSN, REQUIRE_PG, pg_unavailable_reason

REDIS_HOST = os.environ.get("BRIDGE_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BRIDGE_TEST_REDIS_PORT", "6379"))


def redis_unavailable_reason() -> str | None:
    """None when Redis answers PING, else why not."""
    try:
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
        return None
    except Exception as exc:  # any failure means "not available"
        return f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc.__class__.__name__}: {str(exc)[:200]}"


@pytest.fixture(scope="module")
def scaleout_backends_dsn() -> str:
    """The PostgreSQL admin DSN, once PostgreSQL and Redis are known to answer (else skip, or fail in CI)."""
    reasons = [r for r in (pg_unavailable_reason(), redis_unavailable_reason()) if r]
    if reasons:
        message = "scale-out run needs PostgreSQL and Redis: " + "; ".join(reasons)
        if REQUIRE_PG:
            pytest.fail("BRIDGE_REQUIRE_PG=1 but " + message)
        pytest.skip(message)
    return PG_DSN
