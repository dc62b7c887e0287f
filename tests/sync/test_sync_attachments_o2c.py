"""OA → CRM attachments over both simulators: files of approved 费用报销 onto the customer and deal, once."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401

from bridge.hooks.hubspot_files import attachment_ids
from bridge.hub import documents
from bridge.hub.schema import document_copy, quarantine
from bridge.sync import oa_to_crm
from bridge.sync.frame import Tally
from sandbox.common.documents import demo_pdf

INVOICE = demo_pdf("发票 测试 001", 7)
EXECUTABLE = b"MZ\x90\x00" + b"\x00" * 4092  # a Windows program, whatever it is called


@pytest.fixture
def files_on(o2c: O2C, monkeypatch: pytest.MonkeyPatch) -> Iterator[O2C]:  # noqa: F811
    """The o2c world with attachments.enabled, and no faults left behind."""
    monkeypatch.setenv("BRIDGE__ATTACHMENTS__ENABLED", "true")
    yield o2c
    for sim in (o2c.sims.crm, o2c.sims.oa):
        sim.admin("DELETE", "/_sim/faults")


def load_with_files(o2c: O2C) -> Tally:  # noqa: F811
    """One OA → CRM run whose load has the OA hook (the attachments step downloads with it)."""
    o2c.discover()
    return oa_to_crm.load(
        o2c.c2o.crm,
        o2c.hub,
        o2c.ctx("load"),
        o2c.cfg,
        datetime.now(UTC),
        dictionary=o2c.c2o.d,
        policy=o2c.c2o.p,
        oa=o2c.c2o.oa,
    )


def attach(o2c: O2C, code: str, name: str, content: bytes) -> dict[str, Any]:  # noqa: F811
    """A person adds a file to the instance's attachment widget."""
    return o2c.oa_act(
        "attach",
        {"instance_code": code, "file_name": name, "content_b64": base64.b64encode(content).decode()},
    )


def crm_files(o2c: O2C) -> int:  # noqa: F811
    answer = o2c.sims.crm.admin("GET", "/_sim/files")
    assert isinstance(answer, dict)
    return int(answer["files"])


def note_files(o2c: O2C, code: str) -> list[str]:  # noqa: F811
    note = o2c.activity("notes", code)
    assert note is not None, f"no note for {code}"
    return attachment_ids(note["properties"].get("hs_attachment_ids"))


def expense_on_deal(o2c: O2C) -> tuple[str, str, str]:  # noqa: F811
    """A customer, its deal with an approved 立项申请, and the project number expenses name."""
    company, deal, project = o2c.linked_deal()
    o2c.act("approve", project)
    o2c.sync()
    return company, deal, o2c.deal(deal)["oa_project_no"]


def test_an_invoice_reaches_the_note_on_company_and_deal_and_identical_bytes_are_uploaded_once(
    files_on: O2C,
) -> None:
    company, deal, project_no = expense_on_deal(files_on)
    first = files_on.expense(company, amount=300, project_no=project_no)
    second = files_on.expense(company, amount=400, project_no=project_no)
    attach(files_on, first, "发票-001.pdf", INVOICE)
    attach(files_on, second, "发票-001（副本）.pdf", INVOICE)  # the same bytes, renamed
    before = crm_files(files_on)
    files_on.act("approve", first)
    files_on.act("approve", second)
    counts = load_with_files(files_on).counts

    assert crm_files(files_on) == before + 1, "identical bytes are stored once in the CRM"
    assert counts["attachments_uploaded"] == 1
    assert counts["attachments_deduplicated"] == 1
    one, two = note_files(files_on, first), note_files(files_on, second)
    assert one == two, "both notes carry the one file"
    assert len(one) == 1
    stored = files_on.c2o.crm.file(one[0])
    assert stored.access == "PRIVATE"
    assert stored.path is not None
    assert stored.path.startswith(f"/bridge/{company}/")
    assert stored.md5 == hashlib.md5(INVOICE, usedforsecurity=False).hexdigest()
    note = files_on.activity("notes", first)
    assert note is not None
    assert files_on.associations("notes", note["id"], "companies") == [company]
    assert files_on.associations("notes", note["id"], "deals") == [deal]

    sha = hashlib.sha256(INVOICE).hexdigest()
    listed = documents.documents_for_company(files_on.hub, company)
    assert {(r.system, r.record_type, r.record_id) for r in listed} == {
        ("crm", "company", company),
        ("crm", "deal", deal),
        ("oa", "expense_claim", first),
        ("oa", "expense_claim", second),
    }
    assert {r.sha256 for r in listed} == {sha}
    assert {r.doc_class for r in listed} == {"invoice"}
    with files_on.hub.connect() as conn:
        copies = conn.execute(
            select(document_copy.c.system, document_copy.c.origin).where(document_copy.c.sha256 == sha)
        ).all()
    assert sorted(copies) == [("crm", "bridge"), ("oa", "source"), ("oa", "source")]
    audited = [a for a in files_on.audit("attachment_transfer") if a["outcome"] in ("ok", "linked")]
    assert len(audited) == 2
    assert all(a["record_ids"]["sha256"] == sha and a["record_ids"]["size"] == len(INVOICE) for a in audited)
    assert not any("http" in str(a) or "x-orig-sign" in str(a) for a in files_on.audit()), (
        "no URL in the audit"
    )

    files_on.act(
        "approve", files_on.expense(company, amount=1, project_no=project_no)
    )  # another change, no files
    again = load_with_files(files_on).counts
    assert crm_files(files_on) == before + 1
    assert again.get("attachments_uploaded", 0) == 0


def test_refused_files_are_quarantined_one_by_one_and_the_good_one_goes_on(
    files_on: O2C, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE__ATTACHMENTS__MAX_MB", "1")
    company, _, project_no = expense_on_deal(files_on)
    code = files_on.expense(company, project_no=project_no)
    attach(files_on, code, "报销单.pdf", EXECUTABLE)  # a .pdf that is really a program
    attach(files_on, code, "扫描件.pdf", demo_pdf("大文件", 1, size=1_200_000))
    attach(files_on, code, "../发票\u202efdp.pdf", INVOICE)
    files_on.act("approve", code)
    counts = load_with_files(files_on).counts

    assert counts["attachments_uploaded"] == 1
    assert counts["attachments_quarantined"] == 2
    assert counts["attachments_quarantined_executable"] == 1
    assert counts["attachments_quarantined_too_large"] == 1
    (file_id,) = note_files(files_on, code)
    name = files_on.c2o.crm.file(file_id).file_name
    assert "/" not in name
    assert "\u202e" not in name
    assert not name.startswith(".")
    with files_on.hub.connect() as conn:
        entries = conn.execute(select(quarantine).where(quarantine.c.entity == "attachment")).mappings().all()
    by_place = {e["source_id"]: e for e in entries}
    assert set(by_place) == {f"{code}/attachments/0", f"{code}/attachments/1"}
    program, big = by_place[f"{code}/attachments/0"], by_place[f"{code}/attachments/1"]
    assert program["reason_code"] == big["reason_code"] == "attachment_refused"
    assert "可执行程序" in program["message"]
    assert code in program["message"]
    assert "文件过大" in big["message"]
    assert "1 MB" in big["message"]
    assert files_on.quarantine("expense_claim", code) is None, "the instance itself is not held"


def test_a_download_cut_off_is_tried_again_then_quarantined(files_on: O2C) -> None:
    company, _, project_no = expense_on_deal(files_on)
    once, twice = (files_on.expense(company, amount=n, project_no=project_no) for n in (10, 20))
    attach(files_on, once, "发票-a.pdf", demo_pdf("a", 1))
    attach(files_on, twice, "发票-b.pdf", demo_pdf("b", 1))
    files_on.act("approve", once)
    files_on.act("approve", twice)
    files_on.discover()
    # The first download breaks once (retried: it lands); the second breaks on both attempts.
    files_on.sims.oa.admin(
        "POST",
        "/_sim/faults",
        {"kind": "drop_mid_body", "path": "^/lark-approval-attachment/", "method": "GET", "count": 3},
    )
    counts = load_with_files(files_on).counts
    assert counts["attachments_uploaded"] == 1
    assert counts["attachments_quarantined_truncated"] == 1
    done = [c for c in (once, twice) if note_files(files_on, c)]
    assert len(done) == 1
    with files_on.hub.connect() as conn:
        (entry,) = (
            conn.execute(select(quarantine).where(quarantine.c.entity == "attachment")).mappings().all()
        )
    assert "下载中途中断" in entry["message"]


# The attachments checkpoints of the OA → CRM load (tests/reliability's sweep runs without files).
ATTACHMENT_STEPS = ["attachments_instance", "attachments_done"]


@pytest.mark.parametrize("step", ["activities_committed", *ATTACHMENT_STEPS])
def test_a_crash_between_the_note_and_its_files_loses_no_file_and_uploads_none_twice(
    files_on: O2C, step: str
) -> None:
    """The note is committed before its files are taken across: a crash there (or after the first
    instance's files) leaves the instances pending, and the rerun attaches every file, each once."""
    from tests.reliability.reliability_support import Crash, CrashAt

    company, _, project_no = expense_on_deal(files_on)
    codes = [files_on.expense(company, amount=n, project_no=project_no) for n in (11, 22)]
    for n, code in enumerate(codes):
        attach(files_on, code, f"发票-{n}.pdf", demo_pdf(f"crash {n}", 1))
        files_on.act("approve", code)
    before = crm_files(files_on)
    files_on.discover()
    with pytest.raises(Crash):
        oa_to_crm.load(
            files_on.c2o.crm, files_on.hub, files_on.ctx("load"), files_on.cfg, datetime.now(UTC),
            dictionary=files_on.c2o.d, policy=files_on.c2o.p, oa=files_on.c2o.oa, checkpoint=CrashAt(step),
        )
    attached = sum(bool(note_files(files_on, c)) for c in codes)
    assert attached == (2 if step == "attachments_done" else 1 if step == "attachments_instance" else 0)

    again = load_with_files(files_on).counts
    assert all(len(note_files(files_on, c)) == 1 for c in codes), "every note has its file after the rerun"
    assert crm_files(files_on) == before + 2, "each content uploaded once"
    if step == "attachments_done":  # everything was complete: the rerun has nothing to do
        assert again.get("activities_unchanged", 0) == 0
    else:
        assert again.get("activities_unchanged", 0) >= 1, "the rerun found the notes already written"
    third = load_with_files(files_on).counts
    assert third.get("attachments_uploaded", 0) == 0
    assert crm_files(files_on) == before + 2
