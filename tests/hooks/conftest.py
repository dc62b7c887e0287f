"""Every hook test starts with an empty process-wide token cache (tests never share tokens)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.hooks._auth import TokenCache


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    TokenCache.clear_all()
    yield
    TokenCache.clear_all()
