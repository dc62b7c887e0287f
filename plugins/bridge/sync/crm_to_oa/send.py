"""CRM → OA, task ``load``: create the 立项申请 and send the 合同金额变更通知, exactly once.

The exactly-once rule of this direction: the deterministic Feishu ``uuid``
(:func:`bridge.sync.common.idempotency_uuid`) is saved in the hub as an
*intent* link BEFORE the OA call; the instance code, the audit entry and the
completion of the pending change are committed in ONE transaction AFTER it.
A crash between any two steps followed by a rerun creates nothing twice and
loses nothing: the OA refuses a used uuid (the hook reads the first instance
back), an intent whose deal left the stage is probed (adopted or abandoned),
and the link's state says which write-backs are left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from bridge.dictionary import Problem
from bridge.hooks.errors import BadRequestError, NotFoundError, VendorError
from bridge.hub import audit, store
from bridge.hub.store import Link, PendingKey
from bridge.staging import canonical
from bridge.sync.common import CRM_TO_OA
from bridge.sync.crm_to_oa import attachments
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.crm_to_oa.enrich import Due
from bridge.sync.crm_to_oa.settings import CrmToOaSettings
from bridge.sync.frame import AuditStamp, QuarantinedRecord, Run, audit_event, write_audit

C2O = Run[CrmToOaSettings]


class VendorUnavailable(Exception):
    """A vendor stayed unavailable through the hook's retries: ``remaining`` dues are deferred."""

    def __init__(self, error: VendorError, remaining: Sequence[Due]) -> None:
        super().__init__(str(error))
        self.error = error
        self.remaining = list(remaining)


def update_state(conn: Connection, run: C2O, link: Link, changes: Mapping[str, Any]) -> Link:
    """Merge ``changes`` into a link's state (the caller's transaction)."""
    state = {**(link.state or {}), **changes}
    return run.save_link(
        conn,
        link.link_type,
        store.NewLink(link.crm_type, link.crm_id, link.oa_type, link.oa_id, link.oa_uuid, state),
    )


def _is_rejection(exc: VendorError) -> bool:
    """A refusal about this record (fix the data), as opposed to an outage (try later)."""
    return isinstance(exc, BadRequestError | NotFoundError) and not exc.retryable


def _rejected(record_kind: str, deal_id: str, exc: VendorError) -> Problem:
    return Problem(
        "vendor_rejected",
        "deal",
        None,
        department="sales",
        message=(
            f"商机「{deal_id}」的{record_kind}被 {exc.system.upper()} 拒绝（{exc.status} {exc.code or ''}）："
            f"{exc.message}。请按提示在 CRM 中修正商机后自动重试，或修正配置后执行 `bridge quarantine release`。"
        ),
    )


def _save_deal_link(
    conn: Connection, run: C2O, kind: tuple[str, str], due: Due, oa_id: str | None, state: Mapping[str, Any]
) -> None:
    """Save the deal's link of ``kind`` (link type, OA form) with the decision's uuid and ``state``."""
    assert due.decision is not None
    link_type, form = kind
    run.save_link(conn, link_type, store.NewLink("deal", due.deal_id, form, oa_id, due.decision.uuid, state))


def _abandon_intent(conn: Connection, run: C2O, due: Due, why: str) -> None:
    if due.project_link is not None and due.project_link.oa_id is None:
        update_state(conn, run, due.project_link, {"phase": "abandoned", "why": why})


def _created_state(instance: Mapping[str, Any], amount_sent: Any) -> dict[str, Any]:
    """The state of a 立项申请 link once the OA has the instance (write-back pending)."""
    return {
        "phase": "created",
        "amount_sent": amount_sent,
        "notices": 0,
        "project_no": instance.get("project_no"),
        "approval_status": instance.get("approval_status"),
        "writeback": "pending",
    }


# ---------------------------------------------------------------- 立项申请


def probe_intent(run: C2O, due: Due) -> None:
    """A create started earlier for a deal that no longer qualifies: adopt the instance if it exists."""
    assert due.decision is not None
    assert due.decision.uuid
    try:
        detail = run.hooks.oa.get_instance(due.decision.uuid)
    except NotFoundError:
        detail = None
    except VendorError as exc:
        raise VendorUnavailable(exc, [due]) from exc
    with run.hub.begin() as conn:
        if detail is None or not detail.get("instance_code"):
            _abandon_intent(conn, run, due, "stage_left")
            run.tally.add("intents_abandoned")
        else:
            code = str(detail["instance_code"])
            instance = run.d.from_oa(rules.PROJECT_FORM, detail).record
            state = _created_state(instance, instance.get("contract_amount"))
            _save_deal_link(conn, run, (rules.PROJECT_LINK, rules.PROJECT_FORM), due, code, state)
            ids = {"deal_id": due.deal_id, "instance_code": code}
            stamp = AuditStamp("created by an earlier attempt", run.d)  # no policy: nothing was sent
            write_audit(
                conn,
                run.ctx,
                [audit_event("adopt_instance", ("oa", rules.PROJECT_FORM), ids, [], "ok", stamp)],
            )
            run.tally.add("intents_adopted")
        store.complete_changes(conn, CRM_TO_OA, [due.key])


@dataclass
class _Sent:
    """What the OA said to one chunk of creates."""

    created: list[tuple[Due, str, dict[str, Any], list[str]]] = field(default_factory=list)
    rejected: list[tuple[Due, VendorError]] = field(default_factory=list)
    stop: VendorUnavailable | None = None
    files: dict[str, attachments.Prepared] = field(default_factory=dict)  # by deal: contract files carried


def create_projects(run: C2O, chunk: Sequence[Due]) -> None:
    """Create the 立项申请 of a chunk: intents, OA calls, then one transaction confirming them."""
    _save_intents(run, chunk)
    run.step("intents_saved")
    sent = _call_oa(run, chunk)
    _confirm_projects(run, sent)
    attachments.link_filed(
        run,
        [(sent.files[due.deal_id], code) for due, code, _, _ in sent.created if due.deal_id in sent.files],
    )
    run.tally.add("instances_created", len(sent.created))
    run.tally.add("written", len(sent.created))
    run.tally.add("quarantined", len(sent.rejected))
    run.tally.add("quarantined_vendor_rejected", len(sent.rejected))
    run.step("links_committed")
    if sent.stop is not None:
        raise sent.stop


def _save_intents(run: C2O, chunk: Sequence[Due]) -> None:
    """1. Intents: the uuid is in the hub before the OA sees it (a retry finds it and sends the same uuid)."""
    with run.hub.begin() as conn:
        fresh = [due for due in chunk if due.project_link is None]
        store.add_links(
            conn,
            rules.PROJECT_LINK,
            [
                store.NewLink(
                    crm_type="deal",
                    crm_id=due.deal_id,
                    oa_type=rules.PROJECT_FORM,
                    oa_uuid=due.decision.uuid if due.decision else None,
                    state={"phase": "creating"},
                )
                for due in fresh
            ],
            dictionary_version=run.d.version,
            run_id=run.ctx.run_id,
            now=run.now,
        )
        store.set_link_states(
            conn,
            {
                due.project_link.id: {**(due.project_link.state or {}), "phase": "creating"}
                for due in chunk
                if due.project_link is not None
            },
            run_id=run.ctx.run_id,
            now=run.now,
        )
        found = store.links_for_crm_ids(conn, rules.PROJECT_LINK, [due.deal_id for due in fresh])
        for due in fresh:
            due.project_link = next(lk for lk in found[due.deal_id] if lk.oa_id is None)


def _project_sources(due: Due) -> dict[str, Any]:
    return {
        "deal": canonical(dict(due.payload or {})),
        "company": canonical(dict(due.company or {})),
        "contact": due.contact,
    }


def _call_oa(run: C2O, chunk: Sequence[Due]) -> _Sent:
    """2. The OA calls, one create (and read-back) per deal; an outage stops the chunk there."""
    oa, d, p = run.hooks.oa, run.d, run.policy
    code = run.cfg.code(rules.PROJECT_FORM)
    sent = _Sent()
    attached = attachments.attached_to(run, chunk)  # the deals' files (settings attachments), one read
    for n, due in enumerate(chunk):
        assert due.decision is not None
        assert due.decision.uuid
        assert due.decision.applicant
        sources = _project_sources(due)
        form = d.fill_form(rules.PROJECT_FORM, sources, p)
        title = d.form_title(rules.PROJECT_FORM, sources, p)
        files, prepared = attachments.contract_widget(run, due, attached)  # its contract files
        form = [*form, *files]
        try:
            instance_code = oa.create_instance(
                code, due.decision.applicant, form, due.decision.uuid, title=title
            )
            run.step("instance_created")
            detail = oa.get_instance(instance_code)
            run.step("instance_read")
        except VendorError as exc:
            if _is_rejection(exc):
                sent.rejected.append((due, exc))
                continue
            sent.stop = VendorUnavailable(exc, chunk[n:])
            break
        sent.created.append((due, instance_code, detail, [w["id"] for w in form]))
        if prepared is not None and prepared.carried:
            sent.files[due.deal_id] = prepared
    return sent


def _confirm_projects(run: C2O, sent: _Sent) -> None:
    """3. One transaction: links confirmed, audit, changes completed; refusals quarantined."""
    events: list[audit.AuditEvent] = []
    keys: list[PendingKey] = []
    states: dict[int, dict[str, Any]] = {}
    codes: dict[int, str] = {}
    for due, instance_code, detail, fields in sent.created:
        instance = run.d.from_oa(rules.PROJECT_FORM, detail).record
        sent_amount = instance.get("contract_amount") or (due.payload or {}).get("contract_amount")
        assert due.project_link is not None
        states[due.project_link.id] = _created_state(instance, sent_amount)
        codes[due.project_link.id] = instance_code
        events.append(
            run.audit(
                "create_instance",
                ("oa", rules.PROJECT_FORM),
                {"deal_id": due.deal_id, "instance_code": instance_code},
                fields,
                "ok",
                detail="uuid " + str(due.decision.uuid if due.decision else ""),
            )
        )
        if rules.amount(sent_amount) == rules.amount((due.payload or {}).get("contract_amount")):
            keys.append(due.key)
        else:  # an earlier attempt sent an older amount: keep it queued, a notice follows
            run.tally.add("created_with_older_amount")
    with run.hub.begin() as conn:
        store.set_link_states(
            conn, states, oa_ids=codes, dictionary_version=run.d.version, run_id=run.ctx.run_id, now=run.now
        )
        for due, refusal in sent.rejected:
            _abandon_intent(conn, run, due, "rejected")
            owner = str((due.payload or {}).get("owner_id") or "")
            run.quarantine(
                conn,
                ("crm", "deal", due.deal_id),
                _rejected("立项申请", due.deal_id, refusal),
                QuarantinedRecord(due.payload, due.change.content_hash, owner),
            )
            events.append(
                run.audit(
                    "create_instance",
                    ("oa", rules.PROJECT_FORM),
                    {"deal_id": due.deal_id},
                    [],
                    "rejected",
                    detail=f"{refusal.status} {refusal.code}",
                )
            )
            keys.append(due.key)
        write_audit(conn, run.ctx, events)
        store.complete_changes(conn, CRM_TO_OA, keys)


# ---------------------------------------------------------------- 合同金额变更通知


def quarantine_notice_applicant(
    run: C2O, notices: Sequence[Due], snaps: Mapping[str, store.Snapshot]
) -> None:
    """No OA account applies for the notices: they wait in quarantine for a person."""
    problem = Problem(
        code="owner_not_in_oa",
        entity="deal",
        field=None,
        department="finance",
        message=(
            f"合同金额变更通知的申请人（include/settings.yaml 中 oa.notice_applicant_email = "
            f"{run.cfg.notice_applicant_email or '未配置'}）在 OA 中没有账号，通知无法发出。请 OA 管理员开通该账号或修改配置，"
            f"然后执行 `bridge quarantine release` 释放这些记录。"
        ),
    )
    with run.hub.begin() as conn:
        for due in notices:
            snap = snaps[due.deal_id]
            run.quarantine(
                conn,
                ("crm", "deal", due.deal_id),
                problem,
                QuarantinedRecord(due.payload, None, snap.data_owner),
            )
        store.complete_changes(conn, CRM_TO_OA, [due.key for due in notices])
    run.tally.add("quarantined", len(notices))
    run.tally.add("quarantined_owner_not_in_oa", len(notices))


def send_notice(run: C2O, due: Due, applicant: str) -> None:
    """One 合同金额变更通知: intent, OA call, then links, audit and completion in one transaction."""
    decision, project = due.decision, due.project_link
    assert decision is not None
    assert decision.uuid
    assert project is not None
    assert project.oa_id
    assert due.payload is not None
    notice = decision.notice
    state = {
        "phase": "creating",
        "seq": notice["seq"],
        "old_amount": notice["old_amount"],
        "new_amount": notice["new_amount"],
        "changed_at": notice["changed_at"],
    }
    with run.hub.begin() as conn:
        _save_notice(conn, run, due, None, state)
    run.step("notice_intent_saved")
    form, title = notice_form(run, due)
    try:
        instance_code = run.hooks.oa.create_instance(
            run.cfg.code(rules.NOTICE_FORM), applicant, form, decision.uuid, title=title
        )
    except VendorError as exc:
        if not _is_rejection(exc):
            raise VendorUnavailable(exc, [due]) from exc
        _notice_rejected(run, due, state, exc)
        return
    run.step("notice_created")
    with run.hub.begin() as conn:
        _save_notice(conn, run, due, instance_code, {**state, "phase": "created"})
        update_state(conn, run, project, {"amount_sent": notice["new_amount"], "notices": int(notice["seq"])})
        write_audit(
            conn,
            run.ctx,
            [
                run.audit(
                    "create_instance",
                    ("oa", rules.NOTICE_FORM),
                    {
                        "deal_id": due.deal_id,
                        "instance_code": instance_code,
                        "project_instance": project.oa_id,
                    },
                    [w["id"] for w in form],
                    "ok",
                    detail=f"notice {notice['seq']} uuid {decision.uuid}",
                )
            ],
        )
        if decision.reason == "amount_changed":
            store.complete_changes(conn, CRM_TO_OA, [due.key])
        # A resumed notice leaves the change queued: the deal's current amount is compared next run.
    run.tally.add("notices_sent")
    run.tally.add("written")
    run.step("notice_committed")


def _save_notice(
    conn: Connection, run: C2O, due: Due, instance_code: str | None, state: Mapping[str, Any]
) -> None:
    _save_deal_link(conn, run, (rules.NOTICE_LINK, rules.NOTICE_FORM), due, instance_code, state)


def notice_form(run: C2O, due: Due) -> tuple[list[dict[str, Any]], str]:
    """The notice's form widgets and title: the deal (project number from the link if not yet written
    back), its company and the amounts."""
    assert due.decision is not None
    assert due.project_link is not None
    notice = due.decision.notice
    project_state = due.project_link.state or {}
    deal = canonical(dict(due.payload or {}))
    if not deal.get("project_no") and project_state.get("project_no"):
        deal["project_no"] = project_state["project_no"]
    notice_record = {
        "deal_id": due.deal_id,
        "project_no": deal.get("project_no"),
        "old_amount": notice["old_amount"],
        "new_amount": notice["new_amount"],
        "changed_at": notice["changed_at"],
    }
    sources = {"deal": deal, "company": canonical(dict(due.company or {})), "notice": notice_record}
    return run.d.fill_form(rules.NOTICE_FORM, sources, run.policy), run.d.form_title(
        rules.NOTICE_FORM, sources, run.policy
    )


def _notice_rejected(run: C2O, due: Due, state: Mapping[str, Any], exc: VendorError) -> None:
    with run.hub.begin() as conn:
        run.quarantine(
            conn,
            ("crm", "deal", due.deal_id),
            _rejected("合同金额变更通知", due.deal_id, exc),
            QuarantinedRecord(due.payload, due.change.content_hash),
        )
        _save_notice(conn, run, due, None, {**state, "phase": "rejected"})
        store.complete_changes(conn, CRM_TO_OA, [due.key])
    run.tally.add("quarantined")
    run.tally.add("quarantined_vendor_rejected")
