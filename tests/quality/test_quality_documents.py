"""Data health of documents (issue 19) on a hub the real attachment transfers wrote.

The world is the documents page's (``tests/ui/test_ui_documents.py``): a contract filed CRM → OA with its
立项申请, an invoice and a trip file brought OA → CRM; here a 差旅申请 also carries a ``.pdf`` that is
really a program, which the OA → CRM step quarantines. On that hub every document check passes; then the
defects each check exists for are made — time passing over the quarantined file, the OA side of the
contract lost (as a failed or partial write would leave it), a CRM copy and a content row missing — and
each check must fail naming exactly the record concerned.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from tests.sync.sync_c2o_world import c2o_hub_template, c2o_sims  # noqa: F401  (the world's fixtures)
from tests.sync.sync_o2c_world import o2c  # noqa: F401
from tests.ui.test_ui_documents import SHA, FiledWorld, filed  # noqa: F401

from bridge.hub.schema import document, document_copy, document_link
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, HealthRun, business_day, run_checks

CFG = HealthSettings(failing_ids_kept=500, attachment_quarantine_days=7)
PROGRAM = b"MZ\x90\x00" + b"\x00" * 4092  # a Windows program named .pdf
CHECKS = (
    "document.copy.documented",
    "document.link.copy_in_system",
    "project_initiation.documents.contract_in_oa",
    "attachment.quarantine.age",
    "deal.documents.contract_file",
)


def _checks(w: FiledWorld, tmp_path: Path, days_later: float = 0) -> HealthRun:
    now = w.o2c.c2o.now + timedelta(days=days_later)
    return run_checks(
        w.o2c.hub,
        day=business_day(now),
        run_id="test__documents",
        now=now,
        dictionary=w.o2c.c2o.d,
        cfg=CFG,
        output=HealthOutput(tmp_path / "data", False, False),
    )


@pytest.fixture
def refused(filed: FiledWorld) -> tuple[FiledWorld, str]:  # noqa: F811
    """The filed world plus a 差旅申请 whose only file is refused (quarantined as an attachment)."""
    w = filed.o2c
    project_no = w.deal(filed.deal)["oa_project_no"]
    trip = w.trip(filed.company, project_no=project_no)
    w.oa_act(
        "attach",
        {"instance_code": trip, "file_name": "行程单.pdf", "content_b64": base64.b64encode(PROGRAM).decode()},
    )
    w.act("approve", trip)
    w.discover()
    counts = w.load(oa=w.c2o.oa).counts
    assert counts.get("attachments_quarantined_executable") == 1, counts
    return filed, f"{trip}/attachments/0"


def test_what_the_transfers_wrote_passes_and_a_refused_file_left_open_fails_in_time(
    refused: tuple[FiledWorld, str], tmp_path: Path
) -> None:
    w, place = refused
    run = _checks(w, tmp_path, days_later=6.5)
    for check_id in CHECKS:
        outcome = run.outcome(check_id)
        assert outcome.success, (check_id, outcome.failing_ids)
        assert outcome.evaluated > 0, f"{check_id} evaluated nothing"
    assert run.outcome("project_initiation.documents.contract_in_oa").evaluated == 1  # the one 立项申请
    assert run.outcome("attachment.quarantine.age").evaluated == 1  # the refused program
    assert run.outcome("deal.documents.contract_file").evaluated == 1  # the deal at 合同签订
    late = _checks(w, tmp_path, days_later=7.5).outcome("attachment.quarantine.age")
    assert not late.success
    assert late.failing_ids == [place]
    assert "7 天内处理" in late.check.label


def test_a_contract_missing_on_the_oa_side_fails_naming_the_project(
    refused: tuple[FiledWorld, str], tmp_path: Path
) -> None:
    w, _ = refused
    with w.o2c.hub.begin() as conn:  # the OA half of the contract's links lost (a failed or partial write)
        gone = conn.execute(
            delete(document_link).where(
                document_link.c.system == "oa", document_link.c.record_type == "project_initiation"
            )
        )
    assert gone.rowcount == 1
    outcome = _checks(w, tmp_path).outcome("project_initiation.documents.contract_in_oa")
    assert not outcome.success
    assert outcome.failing_ids == [w.project]


def test_a_link_without_a_copy_and_a_copy_without_its_content_fail(
    refused: tuple[FiledWorld, str], tmp_path: Path
) -> None:
    w, _ = refused
    with w.o2c.hub.begin() as conn:
        conn.execute(
            delete(document_copy).where(
                document_copy.c.sha256 == SHA["invoice"], document_copy.c.system == "crm"
            )
        )
        conn.execute(delete(document).where(document.c.sha256 == SHA["trip"]))
    run = _checks(w, tmp_path)
    linked = run.outcome("document.link.copy_in_system")
    assert not linked.success
    assert sorted(linked.failing_ids) == sorted(
        [f"crm:company:{w.company}:{SHA['invoice'][:12]}", f"crm:deal:{w.deal}:{SHA['invoice'][:12]}"]
    )
    documented = run.outcome("document.copy.documented")
    assert not documented.success
    assert {i.split(":", 1)[0] for i in documented.failing_ids} == {"crm", "oa"}  # the trip file's two copies
    assert len(documented.failing_ids) == 2


def test_a_deal_at_contract_stage_without_a_contract_file_fails_while_attachments_travel(
    refused: tuple[FiledWorld, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, _ = refused
    bare = w.o2c.c2o.create_deal(w.company, stage="contractsent")  # no file attached in the CRM
    w.o2c.c2o_sync()  # its 立项申请 is filed without a contract
    assert w.o2c.project_of(bare)
    outcome = _checks(w, tmp_path).outcome("deal.documents.contract_file")
    assert not outcome.success
    assert outcome.evaluated == 2
    assert outcome.failing_ids == [bare]
    assert outcome.check.department == "sales"
    monkeypatch.setenv("BRIDGE__ATTACHMENTS__ENABLED", "false")  # no contract file would ever be registered
    off = _checks(w, tmp_path).outcome("deal.documents.contract_file")
    assert off.evaluated == 0
    assert off.success
