"""The file methods of CrmHook (HubSpot Files v3) and OaHook (Feishu approval files) over the simulators:
round trips byte for byte, duplicates returned not stored, expired download URLs refreshed, Feishu's size
limits refused before any call, interrupted uploads surfacing as ambiguous writes, and bounded memory."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from tests.hooks.hooks_support import RATE_LIMITS_OFF, SEEDED, Sim, crm_hook, oa_hook, sim_fixture

from bridge.hooks._files import FileRefusedError
from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import AmbiguousWriteError, PermissionDeniedError
from bridge.hooks.feishu_files import ATTACHMENT_DOWNLOAD, FILE_UPLOAD, MB
from bridge.hooks.hubspot_files import FILES, SIGNED_DOWNLOAD, SIGNED_URL
from bridge.hooks.oa import INSTANCE, OaHook
from sandbox.common.world import APPROVAL_CODES
from sandbox.oa.testing import sample_widgets

crm = sim_fixture("crm", "crm_files", *RATE_LIMITS_OFF)
oa = sim_fixture("oa", "oa_files", *RATE_LIMITS_OFF, *SEEDED)

PDF = b"%PDF-1.7 signed contract " + os.urandom(200_000)
BIG = 30 * MB
TRACED_BOUND = (
    4 * MB
)  # peak Python allocations while 30 MB go through the hook (measured: 2.0 MiB, 1 MiB chunks)


@pytest.fixture
def crm_files(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> CrmHook:
    crm.reset(("POST", "/reset", {}))  # no files, clock back to now
    return crm_hook(crm, monkeypatch)


@pytest.fixture
def oa_files(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> OaHook:
    oa.reset(("POST", "/config", {"file_url_ttl_s": 12 * 3600}))
    return oa_hook(oa, monkeypatch)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 MB of random bytes on disk (written before any memory is traced)."""
    path = tmp_path_factory.mktemp("files") / "big.pdf"
    with path.open("wb") as out:
        out.write(b"%PDF-1.7\n")
        for _ in range(BIG // MB):
            out.write(os.urandom(MB))
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(crm: Sim) -> int:
    """Files the simulator holds (records), checked against the bytes it keeps."""
    dump: dict[str, Any] = crm.admin("GET", "/files")
    assert len(dump["stored"]) == dump["files"]
    return int(dump["files"])


def traced_peak(work: Callable[[], object]) -> int:
    """The peak of Python allocations while ``work`` runs (bytes over what was allocated before)."""
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


# ------------------------------------------------------------------ HubSpot


def test_crm_upload_and_download_round_trip(crm_files: CrmHook) -> None:
    stored = crm_files.upload_file(io.BytesIO(PDF), name="合同-2026.pdf", folder_path="/contracts/C1")
    assert (stored.name, stored.extension, stored.size, stored.access) == (
        "合同-2026",
        "pdf",
        len(PDF),
        "PRIVATE",
    )
    assert stored.md5 == hashlib.md5(PDF, usedforsecurity=False).hexdigest()
    assert crm_files.file(stored.id) == stored
    out = io.BytesIO()
    facts = crm_files.download(stored.id, out)
    assert out.getvalue() == PDF
    assert (facts.sha256, facts.size, facts.md5) == (sha256(PDF), len(PDF), stored.md5)


def test_crm_upload_sanitises_the_name(crm_files: CrmHook) -> None:
    stored = crm_files.upload_file(io.BytesIO(PDF), name="../合同\u202efdp.exe", folder_path="/contracts")
    assert stored.file_name == "_合同fdp.exe"
    assert stored.path is not None
    assert ".." not in stored.path


def test_crm_duplicate_returns_the_existing_file(crm: Sim, crm_files: CrmHook) -> None:
    first = crm_files.upload_file(io.BytesIO(PDF), name="合同.pdf", folder_path="/contracts/C1")
    again = crm_files.upload_file(io.BytesIO(PDF), name="合同 副本.pdf", folder_path="/contracts/C2")
    assert again.id == first.id
    assert stored_files(crm) == 1


def test_crm_expired_signed_url_is_refreshed_once(crm: Sim, crm_files: CrmHook) -> None:
    stored = crm_files.upload_file(io.BytesIO(PDF), name="合同.pdf", folder_path="/contracts")
    old = crm_files.signed_url(stored.id, 60)
    crm.admin("POST", "/clock", {"advance_ms": 120_000})
    out = io.BytesIO()
    facts = crm_files.download(stored.id, out, url=old)
    assert out.getvalue() == PDF
    assert facts.sha256 == sha256(PDF)
    assert crm_files.api_calls[f"GET {SIGNED_DOWNLOAD}"] == 2  # the expired URL, then the fresh one
    assert crm_files.api_calls[f"GET {SIGNED_URL}"] == 2


def test_crm_interrupted_upload_is_ambiguous_and_a_retry_stores_one_file(
    crm: Sim, crm_files: CrmHook
) -> None:
    crm.fault(kind="drop_mid_body", path="^/files/v3/files$", method="POST", count=1, size_bytes=50_000)
    with pytest.raises(AmbiguousWriteError):
        crm_files.upload_file(io.BytesIO(PDF), name="合同.pdf", folder_path="/contracts")
    assert crm_files.api_calls[f"POST {FILES}"] == 1  # not resent by the plumbing
    assert stored_files(crm) == 0
    first = crm_files.upload_file(io.BytesIO(PDF), name="合同.pdf", folder_path="/contracts")
    second = crm_files.upload_file(io.BytesIO(PDF), name="合同.pdf", folder_path="/contracts")
    assert first.id == second.id
    assert stored_files(crm) == 1


def test_crm_memory_stays_bounded_for_a_30_mb_file(
    crm_files: CrmHook, big_file: Path, tmp_path: Path
) -> None:
    crm_files.client  # noqa: B018 - the hook's client is built before tracing (Connection, session)
    stored_id: list[str] = []

    def upload() -> None:
        with big_file.open("rb") as stream:
            stored_id.append(crm_files.upload_file(stream, name="big.pdf", folder_path="/big").id)

    up = traced_peak(upload)
    dest = tmp_path / "down.pdf"

    def download() -> None:
        with dest.open("wb") as out:
            crm_files.download(stored_id[0], out)

    down = traced_peak(download)
    assert dest.stat().st_size == big_file.stat().st_size
    assert up < TRACED_BOUND, f"upload peak {up / MB:.1f} MB"
    assert down < TRACED_BOUND, f"download peak {down / MB:.1f} MB"


# ------------------------------------------------------------------ Feishu


def applicant(oa: Sim) -> str:
    return str(oa.admin("GET", "/users")["users"][0]["user_id"])


def instance_with(oa: Sim, hook: OaHook, **files: list[str]) -> str:
    form = sample_widgets("expense_claim", **files)
    return hook.create_instance(APPROVAL_CODES["expense_claim"], applicant(oa), form, str(uuid.uuid4()))


def test_oa_upload_and_download_round_trip(oa: Sim, oa_files: OaHook) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    code = oa_files.upload_attachment(io.BytesIO(PDF), name="发票.pdf")
    image = oa_files.upload_attachment(io.BytesIO(png), name="收据.png", kind="image")
    instance = oa_files.get_instance(instance_with(oa, oa_files, attachments=[code], images=[image]))
    files = oa_files.instance_files(instance)
    assert [(f.widget_id, f.kind, f.name) for f in files] == [
        ("attachments", "attachment", "发票.pdf"),
        ("images", "image", "收据.png"),
    ]
    for found, content in zip(files, (PDF, png), strict=True):
        out = io.BytesIO()
        facts = oa_files.download_attachment(found, out)
        assert out.getvalue() == content
        assert facts.sha256 == sha256(content)


@pytest.mark.parametrize(("kind", "size"), [("attachment", 50 * MB + 1), ("image", 10 * MB + 1)])
def test_oa_limits_are_refused_before_any_call(
    oa: Sim, oa_files: OaHook, tmp_path: Path, kind: str, size: int
) -> None:
    path = tmp_path / "too_big.bin"
    with path.open("wb") as out:
        out.truncate(size)  # sparse: no memory, no disk
    with path.open("rb") as stream, pytest.raises(FileRefusedError) as caught:
        oa_files.upload_attachment(stream, name="大文件.pdf", kind=kind)  # type: ignore[arg-type]
    assert caught.value.reason_zh.startswith("文件过大：")
    assert oa_files.api_calls.total() == 0
    assert oa.requests_to(f"POST {FILE_UPLOAD}") == 0


def test_oa_expired_attachment_url_is_refreshed_by_reading_the_instance(oa: Sim, oa_files: OaHook) -> None:
    oa.admin("POST", "/config", {"file_url_ttl_s": 60})  # 12 h in Feishu; a minute here (the token lives on)
    code = oa_files.upload_attachment(io.BytesIO(PDF), name="发票.pdf")
    instance = oa_files.get_instance(instance_with(oa, oa_files, attachments=[code]))
    (found,) = oa_files.instance_files(instance)
    oa.admin("POST", "/clock", {"advance_ms": 120_000})
    out = io.BytesIO()
    facts = oa_files.download_attachment(found, out)
    assert out.getvalue() == PDF
    assert facts.size == len(PDF)
    assert oa_files.api_calls[f"GET {ATTACHMENT_DOWNLOAD}"] == 2
    assert oa_files.api_calls[f"GET {INSTANCE}"] == 2  # the first read, then the refresh


def test_oa_interrupted_upload_is_ambiguous(oa: Sim, oa_files: OaHook) -> None:
    before = oa.admin("GET", "/files")["files"]
    oa.fault(kind="drop_mid_body", path="file/upload$", method="POST", count=1, size_bytes=50_000)
    with pytest.raises(AmbiguousWriteError):
        oa_files.upload_attachment(io.BytesIO(PDF), name="发票.pdf")
    assert oa_files.api_calls[f"POST {FILE_UPLOAD}"] == 1
    assert oa.admin("GET", "/files")["files"] == before  # nothing kept of the cut-off upload
    assert oa_files.upload_attachment(io.BytesIO(PDF), name="发票.pdf")
    assert oa.admin("GET", "/files")["files"] == before + 1


def test_oa_memory_stays_bounded_for_a_30_mb_file(
    oa: Sim, oa_files: OaHook, big_file: Path, tmp_path: Path
) -> None:
    oa_files.client  # noqa: B018 - the hook's client is built before tracing (Connection, session)
    codes: list[str] = []

    def upload(stream: BinaryIO) -> None:
        codes.append(oa_files.upload_attachment(stream, name="big.pdf"))

    with big_file.open("rb") as stream:
        up = traced_peak(lambda: upload(stream))
    (found,) = oa_files.instance_files(oa_files.get_instance(instance_with(oa, oa_files, attachments=codes)))
    dest = tmp_path / "down.pdf"
    with dest.open("wb") as out:
        down = traced_peak(lambda: oa_files.download_attachment(found, out))
    assert dest.stat().st_size == big_file.stat().st_size
    assert up < TRACED_BOUND, f"upload peak {up / MB:.1f} MB"
    assert down < TRACED_BOUND, f"download peak {down / MB:.1f} MB"


def test_crm_upload_after_a_rate_limit_resends_the_same_bytes(crm: Sim, crm_files: CrmHook) -> None:
    crm.fault(kind="rate_limit", path="^/files/v3/files$", method="POST", count=1, retry_after=0.01)
    stored = crm_files.upload_file(io.BytesIO(PDF), name="合同.pdf", folder_path="/contracts")
    assert crm_files.api_calls[f"POST {FILES}"] == 2  # refused before it was applied: resent
    out = io.BytesIO()
    crm_files.download(stored.id, out)
    assert out.getvalue() == PDF


def test_oa_url_refused_again_after_a_fresh_read_is_permission_denied(oa: Sim, oa_files: OaHook) -> None:
    code = oa_files.upload_attachment(io.BytesIO(PDF), name="发票.pdf")
    oa.admin("POST", "/config", {"file_url_ttl_s": 0})  # every URL is born expired
    (found,) = oa_files.instance_files(oa_files.get_instance(instance_with(oa, oa_files, attachments=[code])))
    out = io.BytesIO()
    with pytest.raises(PermissionDeniedError):
        oa_files.download_attachment(found, out)
    assert out.getvalue() == b""
    assert oa_files.api_calls[f"GET {ATTACHMENT_DOWNLOAD}"] == 2
