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
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection

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


AUDIT_OPERATION = "event_subscribe"
AUDIT_ENTITY = "approval_definition"


@dataclass(frozen=True)
class LastSubscribe:
    outcome: str  # subscribed | already | failed
    detail: str
    at: datetime


def record(conn: Connection, results: Iterable[Subscribed]) -> None:
    """One audit entry per approval definition: Feishu has no API that lists subscriptions, so what
    ``bridge events subscribe`` got is what the Connection test can report later."""
    from bridge.context import RunContext
    from bridge.hub import audit

    ctx = RunContext(
        dag_id=None, run_id=None, task_id=None, try_number=None, principal="bridge events subscribe"
    )
    audit.record_many(
        conn,
        ctx,
        [
            audit.AuditEvent(
                AUDIT_OPERATION,
                "oa",
                AUDIT_ENTITY,
                {"form": r.form, "approval_code": r.approval_code},
                [],
                r.outcome.split(":", 1)[0],
                r.outcome[:200],
            )
            for r in results
        ],
    )


def last_results(conn: Connection, codes: Iterable[str]) -> dict[str, LastSubscribe]:
    """The newest recorded outcome per approval code (codes never subscribed are absent)."""
    from sqlalchemy import select

    from bridge.hub.schema import audit_log

    wanted, found = set(codes), {}
    query = (
        select(audit_log.c.record_ids, audit_log.c.outcome, audit_log.c.detail, audit_log.c.at)
        .where(audit_log.c.operation == AUDIT_OPERATION, audit_log.c.entity == AUDIT_ENTITY)
        .order_by(audit_log.c.seq.desc())
    )
    for row in conn.execute(query):
        code = str((row.record_ids or {}).get("approval_code", ""))
        if code in wanted and code not in found:
            found[code] = LastSubscribe(str(row.outcome), str(row.detail or ""), row.at)
            if len(found) == len(wanted):
                break
    return found
