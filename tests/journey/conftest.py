"""Fixtures of the journey tests (defined in ``journey_world.py``, which tests import helpers from)."""

from __future__ import annotations

from tests.journey.journey_world import journey, journey_sims  # noqa: F401
