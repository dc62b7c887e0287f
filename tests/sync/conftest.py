"""Fixtures of the sync tests (defined in ``sync_c2o_world.py``, which tests import helpers from)."""

from __future__ import annotations

from tests.sync.sync_c2o_world import c2o, c2o_factory, c2o_hub_template, c2o_sims  # noqa: F401
