"""``bridge events subscribe``: what each vendor must send us, set up or spelled out.

Feishu: ``OaHook.subscribe_approval`` for every approval definition the syncs
read (``include/settings.yaml`` ``oa:``), through the ``oa_default``
Connection; "subscription existed" counts as done. HubSpot: a public app's webhook subscriptions are managed with the
developer account's key, not the portal's token the bridge holds, so the
command prints the subscriptions to create in the app's *Webhooks* settings
(and the target URL) instead of calling HubSpot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

HUBSPOT_OBJECTS = ("deal", "company", "contact")
HUBSPOT_EVENTS = ("creation", "propertyChange", "deletion", "merge", "restore", "associationChange")


class SubscribesApprovals(Protocol):
    """What subscribing needs of the OA hook (``OaHook.subscribe_approval``)."""

    def subscribe_approval(self, approval_code: str) -> bool: ...


@dataclass(frozen=True)
class Subscribed:
    form: str
    approval_code: str
    outcome: str  # subscribed | already | failed: <reason>


def synced_codes(raw_settings: Mapping[str, Any]) -> dict[str, str]:
    """Approval codes of the forms the syncs read (oa_to_crm.forms; 立项申请 is among them)."""
    codes = dict(raw_settings.get("oa", {}).get("approval_codes", {}))
    forms = list(raw_settings.get("oa_to_crm", {}).get("forms", [])) or list(codes)
    return {form: str(codes[form]) for form in forms if form in codes}


def subscribe_feishu(hook: SubscribesApprovals, codes: Mapping[str, str]) -> list[Subscribed]:
    from bridge.hooks.errors import VendorError

    done: list[Subscribed] = []
    for form, code in codes.items():
        try:
            outcome = "subscribed" if hook.subscribe_approval(code) else "already"
        except VendorError as exc:
            outcome = f"failed: {exc}"
        done.append(Subscribed(form, code, outcome))
    return done


def hubspot_instructions(target_url: str) -> Iterable[str]:
    yield f"HubSpot app → Webhooks: target URL {target_url or '<https://your-host>/events/hubspot>'}"
    yield "  throttling: at most 10 concurrent requests; subscriptions (activate each):"
    for obj in HUBSPOT_OBJECTS:
        yield "    " + ", ".join(f"{obj}.{kind}" for kind in HUBSPOT_EVENTS if kind != "associationChange")
    yield "    object.associationChange (deal ↔ company, contact ↔ company)"
    yield "  then copy the app's client secret into crm_default's extra webhook_client_secret (docs/events.md)"
