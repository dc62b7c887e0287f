"""A private Redis for the event tests: 127.0.0.1, a free port, no persistence, stopped by PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_redis_server() -> str:
    """The redis-server binary; without it the test is skipped, or fails under BRIDGE_REQUIRE_REDIS=1 (CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server; .ci/run has it)"
        if os.environ.get("BRIDGE_REQUIRE_REDIS") == "1":
            pytest.fail(f"BRIDGE_REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    binary = require_redis_server()
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# The two-way sync world of tests/sync (simulators for the session, a migrated hub per test).
from tests.sync.sync_c2o_world import c2o, c2o_hub_template, c2o_sims  # noqa: E402, F401
from tests.sync.sync_o2c_world import o2c  # noqa: E402, F401
