"""The history migration's attachments over both simulators (Param ``attachments``): the files of migrated
approved 费用报销 reach the CRM once per content, a crashed chunk resumes without a second upload, an expired
download URL is refreshed by reading the instance again, an interrupted upload is retried then quarantined."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.migration.conftest import REAL_LOAD

from bridge.hooks.errors import ServerError
from bridge.hooks.feishu_files import ATTACHMENT_DOWNLOAD
from bridge.hooks.oa import OaHook
from bridge.hub import store
from bridge.hub.schema import document_copy, document_link, quarantine
from bridge.migration import steps
from bridge.migration.params import PARAM_SPECS, MigrationParams
from sandbox.common.documents import demo_pdf

WORLD = {"seed": 5, "companies": 20, "deals": 40, "oa_instances": 60, "dirty_share": 0.0}
SALT = uuid.uuid4().hex[:8]  # the CRM simulator keeps files across tests: each test's bytes are its own


@pytest.fixture
def world(mig: Any) -> Iterator[Any]:
    """A migrated world (attachments off) whose linked approved 费用报销 are known; faults and the OA's
    URL lifetime put back afterwards."""
    mig.seed(**WORLD)
    mig.run("manual__base", attachments=False)
    yield mig
    for sim in (mig.sims.crm, mig.sims.oa):
        sim.admin("DELETE", "/_sim/faults")
    mig.sims.oa.admin("POST", "/_sim/config", {"file_url_ttl_s": 12 * 3600})


def linked_expenses(mig: Any) -> list[str]:
    """Approved 费用报销 the base migration linked to a customer (the ones whose files travel)."""
    codes = []
    for link in mig.links("company_customer"):
        snap = mig.snapshot("oa", "expense_claim", str(link.oa_id))
        if link.oa_type == "expense_claim" and snap and snap.payload.get("approval_status") == "APPROVED":
            codes.append(str(link.oa_id))
    return sorted(codes)


def attach(mig: Any, code: str, name: str, content: bytes) -> str:
    answer = mig.sims.oa.admin(
        "POST",
        "/_sim/act/attach",
        {"instance_code": code, "file_name": name, "content_b64": base64.b64encode(content).decode()},
    )
    assert isinstance(answer, dict)
    return str(answer["code"])


def crm_files(mig: Any) -> int:
    answer = mig.sims.crm.admin("GET", "/_sim/files")
    assert isinstance(answer, dict)
    return int(answer["files"])


def crm_copies(mig: Any) -> dict[str, int]:
    with mig.hub.connect() as conn:
        rows = conn.execute(
            select(document_copy.c.sha256, func.count())
            .where(document_copy.c.system == "crm")
            .group_by(document_copy.c.sha256)
        ).all()
    return {sha: n for sha, n in rows}


def linked_instances(mig: Any) -> set[str]:
    with mig.hub.connect() as conn:
        rows = conn.execute(
            select(document_link.c.record_id).where(
                document_link.c.system == "oa", document_link.c.record_type == "expense_claim"
            )
        ).all()
    return {r[0] for r in rows}


def run(mig: Any, run_id: str, oa: OaHook | None = None) -> dict[str, Any]:
    start = datetime.fromtimestamp(mig.world.now_ms / 1000, tz=UTC) - timedelta(days=800)
    params = {**REAL_LOAD, "date_from": start.date().isoformat(), "attachments": True}
    return steps.run_all(mig.migration(run_id), params, mig.crm(), oa or mig.oa())


def with_files(mig: Any, n: int) -> tuple[list[str], int]:
    """``n`` linked approved instances, each with its own invoice, the first three also with the same
    scan (renamed) → (their codes, how many distinct contents)."""
    salt = uuid.uuid4().hex[:8]
    duplicate = demo_pdf(f"重复 发票 {salt}", 3)  # the same scan attached to several instances (renamed)
    codes = linked_expenses(mig)[:n]
    assert len(codes) == n, f"the world has {len(codes)} linked approved 费用报销, the test needs {n}"
    for i, code in enumerate(codes):
        attach(mig, code, f"发票-{i}.pdf", demo_pdf(f"发票 {code} {salt}", 1))
        if i < 3:
            attach(mig, code, f"合同扫描件-{i}.pdf", duplicate)
    return codes, n + 1


def test_the_param_is_in_the_form_and_follows_the_settings_when_left_empty() -> None:
    spec = PARAM_SPECS["attachments"]
    assert spec["title"].startswith("迁移附件")
    assert spec["default"] is None
    now = datetime.now(UTC)
    assert MigrationParams.from_mapping({}, now).attachments is None
    assert MigrationParams.from_mapping({"attachments": "true"}, now).attachments is True
    stored = MigrationParams.from_mapping({"attachments": False}, now).as_dict()
    assert MigrationParams.from_stored(stored).attachments is False


def test_history_files_reach_the_crm_once_per_content(world: Any) -> None:
    codes, distinct = with_files(world, 5)
    before = crm_files(world)
    result = run(world, "manual__files")
    assert result["status"] == "success"
    assert crm_files(world) - before == distinct  # 8 files, 6 contents: the renamed scan uploaded once
    copies = crm_copies(world)
    assert len(copies) == distinct
    assert set(copies.values()) == {1}
    assert linked_instances(world) == set(codes)
    customer = {str(lk.oa_id): lk.crm_id for lk in world.links("company_customer")}
    with world.hub.connect() as conn:
        on_customers = set(
            conn.execute(
                select(document_link.c.sha256, document_link.c.record_id).where(
                    document_link.c.system == "crm", document_link.c.record_type == "company"
                )
            ).all()
        )
    scan_customers = {customer[c] for c in codes[:3]}
    assert len(on_customers) == len(codes) + len(scan_customers)  # each content on its instance's customer
    # a second migration of the same history transfers nothing
    run(world, "manual__again")
    assert crm_files(world) - before == distinct


def test_a_chunk_that_crashed_mid_way_resumes_without_a_second_upload(world: Any) -> None:
    codes, distinct = with_files(world, 5)
    last = attach(
        world, codes[-1], "补充发票.pdf", demo_pdf(f"补充 {SALT}", 2)
    )  # the last instance's last file
    world.sims.oa.admin(
        "POST",
        "/_sim/faults",
        {"kind": "error", "status": 500, "path": f"^/lark-approval-attachment/.*/{last}/", "count": 1},
    )
    before = crm_files(world)
    with pytest.raises(ServerError):
        run(world, "manual__crash")
    part = crm_files(world) - before
    assert 0 < part < distinct + 1  # the chunk uploaded some files, then crashed
    resumed = run(world, "manual__crash")  # the same run: the failed chunk is redone
    assert resumed["status"] == "success"
    assert crm_files(world) - before == distinct + 1  # nothing uploaded twice, nothing lost
    assert set(crm_copies(world).values()) == {1}
    assert linked_instances(world) == set(codes)


def test_an_expired_download_url_is_refreshed_by_reading_the_instance_again(world: Any) -> None:
    (code,) = linked_expenses(world)[:1]
    attach(world, code, "发票.pdf", demo_pdf(f"过期 {SALT}", 1))
    world.sims.oa.admin("POST", "/_sim/config", {"file_url_ttl_s": 1})
    # the download waits past the URL's lifetime: the OA answers 403, the hook reads the instance again
    world.sims.oa.admin(
        "POST",
        "/_sim/faults",
        {"kind": "latency", "latency_ms": 2500, "path": "^/lark-approval-attachment/", "count": 1},
    )
    oa = world.oa()
    before = crm_files(world)
    run(world, "manual__expired", oa)
    assert crm_files(world) - before == 1
    assert oa.api_calls[f"GET {ATTACHMENT_DOWNLOAD}"] == 2  # the expired URL, then the fresh one
    assert world.count(quarantine, quarantine.c.entity == "attachment") == 0


def test_a_url_that_stays_expired_quarantines_the_file_not_the_run(world: Any) -> None:
    (code,) = linked_expenses(world)[:1]
    attach(world, code, "发票.pdf", demo_pdf(f"一直过期 {SALT}", 1))
    world.sims.oa.admin("POST", "/_sim/config", {"file_url_ttl_s": 0})  # every URL is born expired
    before = crm_files(world)
    assert run(world, "manual__stale")["status"] == "success"
    assert crm_files(world) == before
    with world.hub.connect() as conn:
        (entry,) = conn.execute(select(quarantine).where(quarantine.c.entity == "attachment")).mappings()
    assert "不允许下载（403）" in entry["message"]
    assert code in entry["message"]


def test_an_interrupted_upload_is_retried_quarantined_and_uploaded_once_when_released(world: Any) -> None:
    codes, _ = with_files(world, 2)
    world.sims.crm.admin(
        "POST",
        "/_sim/faults",
        {"kind": "drop_mid_body", "path": "^/files/v3/files$", "method": "POST", "size_bytes": 100},
    )
    before = crm_files(world)
    assert run(world, "manual__cut")["status"] == "success"  # the run goes on
    assert crm_files(world) == before
    with world.hub.connect() as conn:
        entries = conn.execute(select(quarantine).where(quarantine.c.entity == "attachment")).mappings().all()
    assert len(entries) == 4
    assert all("上传到 CRM 时中断" in e["message"] for e in entries)
    assert all("bridge quarantine release" in e["message"] for e in entries)
    assert linked_instances(world) == set()
    # the CRM is back, a person releases the entries: the next migration uploads each content once
    world.sims.crm.admin("DELETE", "/_sim/faults")
    ctx = world.migration("manual__cut").ctx
    with world.hub.begin() as conn:
        for e in entries:
            store.release(conn, ctx, int(e["id"]), "测试员")
    assert run(world, "manual__after")["status"] == "success"
    assert crm_files(world) - before == 3  # two invoices and the shared scan
    assert set(crm_copies(world).values()) == {1}
    assert linked_instances(world) == set(codes)


def test_deals_contract_files_are_recorded_in_the_hub_once_and_not_downloaded_again(world: Any) -> None:
    answer = world.sims.crm.admin("POST", "/_sim/act/attach_contracts", {"count": 3, "seed": 9})
    assert isinstance(answer, dict)
    attached = {(a["deal_id"], a["file_id"], a["note_id"]) for a in answer["attached"]}
    assert len(attached) == 3
    crm = world.crm()
    start = datetime.fromtimestamp(world.world.now_ms / 1000, tz=UTC) - timedelta(days=800)
    params = {**REAL_LOAD, "date_from": start.date().isoformat(), "attachments": True}
    assert steps.run_all(world.migration("manual__deals"), params, crm, world.oa())["status"] == "success"
    with world.hub.connect() as conn:
        copies = set(
            conn.execute(
                select(document_copy.c.file_ref, document_copy.c.origin).where(
                    document_copy.c.system == "crm"
                )
            ).all()
        )
        links = set(
            conn.execute(
                select(document_link.c.record_id, document_link.c.via).where(
                    document_link.c.record_type == "deal"
                )
            ).all()
        )
    assert copies == {(f, "source") for _, f, _ in attached}  # recorded as the CRM's own, nothing uploaded
    assert links == {(d, n) for d, _, n in attached}
    assert any("signed-url" in endpoint for endpoint in crm.api_calls)  # the first run downloaded them
    again = world.crm()
    assert steps.run_all(world.migration("manual__deals2"), params, again, world.oa())["status"] == "success"
    assert not any("signed-url" in endpoint for endpoint in again.api_calls)  # known by file id: no download
