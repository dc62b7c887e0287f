"""Fixtures of the OA simulator tests: one real simulator process per test module and its client.

A module passes further simulator options in ``OA_SIM_ARGS`` (e.g. ``("--seed", "42")``);
frequency limits are off unless a test switches them on. The CRM simulator's fixtures are
imported from ``conftest_crm.py`` by the modules that use them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.launcher import SimProcess
from sandbox.oa.testing import OaClient, running_oa


@pytest.fixture(scope="module")
def oa_sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SimProcess, OaClient]]:
    """One simulator for the module: starting one per test would dominate the run time."""
    options = getattr(request.module, "OA_SIM_ARGS", ())
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    with running_oa(folder, "--rate-limits", "off", *options) as pair:
        yield pair


@pytest.fixture
def oa(oa_sim: tuple[SimProcess, OaClient]) -> OaClient:
    """The module's simulator back to its seeded world, with no token cached: tests stay independent."""
    client = oa_sim[1]
    client.admin("POST", "/reset")
    client.forget_token()
    return client
