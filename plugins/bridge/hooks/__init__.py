"""The bridge's two vendor hooks: ``CrmHook`` (HubSpot CRM v3) and ``OaHook`` (Feishu approval v4).

Imported lazily, so that ``bridge.hooks.ui`` and ``bridge.hooks.errors`` stay
cheap to import (the provider info and the DAG files use them at parse time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.hooks.crm import CrmHook, RecordOutcome
    from bridge.hooks.oa import OaHook

__all__ = ["CrmHook", "OaHook", "RecordOutcome"]


def __getattr__(name: str) -> Any:
    if name in ("CrmHook", "RecordOutcome"):
        from bridge.hooks import crm

        return getattr(crm, name)
    if name == "OaHook":
        from bridge.hooks.oa import OaHook

        return OaHook
    raise AttributeError(f"module 'bridge.hooks' has no attribute {name!r}")
