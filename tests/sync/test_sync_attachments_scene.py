"""The demo's attachments scene (sandbox/scenario/attachments.py) over fresh simulators: one contract scan
shared by two 立项申请 is uploaded to the OA once, one invoice on two notes once to the CRM, the disguised
programs are quarantined."""

from __future__ import annotations

from pathlib import Path

from sandbox import launcher
from sandbox.scenario import attachments, crm_to_oa_sync


def test_the_demo_files_follow_their_records_each_content_once(tmp_path: Path) -> None:
    with launcher.simulators(tmp_path / "sandbox", seed=20261126, max_lifetime=600) as sims:
        crm_to_oa_sync.before(sims, tmp_path)
        crm_to_oa_sync._cycle(sims, tmp_path)  # customers and deals staged in the hub
        files_before = sims.crm.admin("GET", "/_sim/files")["files"]

        lines = attachments.scene(sims, tmp_path)

        text = "\n".join(lines)
        assert "contract files uploaded to the OA 1×, the same bytes reused 1×" in text, text
        assert "invoices uploaded to the CRM 1×, linked again 1×, refused to quarantine 2× (executable)" in text, text
        assert sum("carries 1 contract file(s)" in line for line in lines) == 2, text
        # the two copies of the scan a person attached in the CRM, and ONE invoice file the bridge uploaded
        assert sims.crm.admin("GET", "/_sim/files")["files"] == files_before + 3
