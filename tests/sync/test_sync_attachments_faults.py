"""OA → CRM attachments under vendor faults, over both simulators: an expired download URL is refreshed by
reading the instance again; an upload the CRM breaks off is retried, the instance re-queued, and the file
stored once when the CRM is back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from tests.sync.sync_o2c_world import O2C, o2c  # noqa: F401
from tests.sync.test_sync_attachments_o2c import (  # noqa: F401
    attach,
    crm_files,
    expense_on_deal,
    files_on,
    note_files,
)

from bridge.hooks.feishu_files import ATTACHMENT_DOWNLOAD
from bridge.sync import oa_to_crm
from bridge.sync.frame import Tally
from sandbox.common.documents import demo_pdf

TWELVE_HOURS = 12 * 3600


@pytest.fixture
def faulty(files_on: O2C) -> Iterator[O2C]:  # noqa: F811
    """The o2c world with attachments.enabled (faults cleared by ``files_on``); the OA's URL lifetime put back."""
    yield files_on
    files_on.sims.oa.admin("POST", "/_sim/config", {"file_url_ttl_s": TWELVE_HOURS})


def load(o2c: O2C, now: datetime) -> Tally:  # noqa: F811
    return oa_to_crm.load(
        o2c.c2o.crm,
        o2c.hub,
        o2c.ctx("load"),
        o2c.cfg,
        now,
        dictionary=o2c.c2o.d,
        policy=o2c.c2o.p,
        oa=o2c.c2o.oa,
    )


def approved_with_file(o2c: O2C, content: bytes) -> str:  # noqa: F811
    company, _, project_no = expense_on_deal(o2c)
    code = o2c.expense(company, amount=120, project_no=project_no)
    attach(o2c, code, "发票.pdf", content)
    o2c.act("approve", code)
    o2c.discover()
    return code


def test_an_expired_url_is_refreshed_by_reading_the_instance_again(faulty: O2C) -> None:
    code = approved_with_file(faulty, demo_pdf("过期链接", 4))
    faulty.sims.oa.admin("POST", "/_sim/config", {"file_url_ttl_s": 1})
    # the download waits past the URL's lifetime: the OA answers 403 "url expired"
    faulty.sims.oa.admin(
        "POST",
        "/_sim/faults",
        {"kind": "latency", "latency_ms": 2500, "path": "^/lark-approval-attachment/", "count": 1},
    )
    before = crm_files(faulty)
    downloads = faulty.c2o.oa.api_calls[f"GET {ATTACHMENT_DOWNLOAD}"]
    counts = load(faulty, datetime.now(UTC)).counts
    assert counts["attachments_uploaded"] == 1
    assert faulty.c2o.oa.api_calls[f"GET {ATTACHMENT_DOWNLOAD}"] - downloads == 2  # expired, then fresh
    assert crm_files(faulty) == before + 1
    assert len(note_files(faulty, code)) == 1


def test_an_interrupted_upload_is_retried_requeued_and_stored_once_later(faulty: O2C) -> None:
    code = approved_with_file(faulty, demo_pdf("中断上传", 4))
    faulty.sims.crm.admin(
        "POST",
        "/_sim/faults",
        {"kind": "drop_mid_body", "path": "^/files/v3/files$", "method": "POST", "size_bytes": 100},
    )
    before = crm_files(faulty)
    now = datetime.now(UTC)
    first = load(faulty, now).counts
    assert first["attachments_deferred"] == 1  # the hook's retry and the return-existing retry broke too
    assert crm_files(faulty) == before
    assert note_files(faulty, code) == []
    faulty.sims.crm.admin("DELETE", "/_sim/faults")  # the CRM is back
    later = now + timedelta(seconds=faulty.cfg.retry_delay_seconds + 1)
    second = load(faulty, later).counts
    assert second["attachments_uploaded"] == 1
    assert crm_files(faulty) == before + 1
    assert len(note_files(faulty, code)) == 1
