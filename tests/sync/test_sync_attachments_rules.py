"""The attachment steps' decisions without the simulators: content verdicts, the contract-file rule, the
bounded download, the hook's reading of a note's attachment ids, the settings' shape."""

from __future__ import annotations

import io
from typing import BinaryIO

import pytest
from pydantic import ValidationError

from bridge.hooks._files import FileFacts
from bridge.hooks.errors import NotFoundError, TransportError
from bridge.hooks.hubspot_files import attachment_ids
from bridge.settings_model import AttachmentsSection, ContractFilesSection
from bridge.sync import transfer
from bridge.sync.crm_to_oa.attachments import bridge_folder, is_contract_file
from bridge.sync.transfer import Fetched, Refusal

PDF = b"%PDF-1.4\n" + b"x" * 100
ALLOWED = ("pdf", "ofd", "jpeg", "png")


@pytest.mark.parametrize(
    ("kind", "size", "reason"),
    [
        ("pdf", 10, None),
        ("ofd", 1024, None),
        ("executable", 10, "executable"),  # never, even if the direction allowed it by name
        ("zip", 10, "wrong_kind"),
        ("unknown", 10, "wrong_kind"),
        ("pdf", 2 * transfer.MB, "too_large"),
    ],
)
def test_content_verdict(kind: str, size: int, reason: str | None) -> None:
    verdict = transfer.check_content(kind, size, ALLOWED, transfer.MB)
    assert (verdict.reason if verdict else None) == reason


def test_refusal_messages_say_what_where_and_what_to_do_in_chinese() -> None:
    big = transfer.check_content("pdf", 60 * transfer.MB, ALLOWED, 50 * transfer.MB)
    assert big is not None
    message = transfer.refusal_message("扫描件.pdf", "OA 费用报销审批 I-1", big, "请换用较小的文件。")
    assert (
        message
        == "附件「扫描件.pdf」（OA 费用报销审批 I-1）未传送：文件过大：不能超过 50 MB（本文件60.0 MB）。请换用较小的文件。"
    )
    wrong = transfer.check_content("zip", 1, ALLOWED, transfer.MB)
    assert wrong is not None
    assert "ZIP 压缩包" in wrong.detail_zh
    assert "OFD 电子发票" in wrong.detail_zh


@pytest.mark.parametrize(
    ("folders", "pattern", "path", "expected"),
    [
        ((), None, "/contracts/合同.pdf", True),
        ((), None, "/bridge/77/发票.pdf", False),  # what the bridge brought from the OA
        (("/contracts",), None, "/contracts/2026/合同.pdf", True),
        (("/contracts",), None, "/contractsold/合同.pdf", False),
        (("/contracts/",), None, "/quotes/合同.pdf", False),
        ((), "合同|contract", "/any/报价单.pdf", False),
        ((), "合同|contract", "/any/Signed-contract.pdf", True),
        ((), None, None, True),
    ],
)
def test_contract_file_rule(
    folders: tuple[str, ...], pattern: str | None, path: str | None, expected: bool
) -> None:
    rule = ContractFilesSection(folders=folders, name_pattern=pattern)
    name = (path or "x.pdf").rsplit("/", 1)[-1]
    assert is_contract_file(rule, path, name, bridge_folder(AttachmentsSection())) is expected


def test_settings_refuse_executables_and_bad_patterns() -> None:
    with pytest.raises(ValidationError):
        AttachmentsSection.model_validate({"oa_to_crm": {"kinds": ["pdf", "executable"]}})
    with pytest.raises(ValidationError):
        AttachmentsSection.model_validate({"crm_to_oa": {"name_pattern": "合同("}})
    assert AttachmentsSection().enabled is False


def _facts(data: bytes) -> FileFacts:
    return FileFacts(sha256="0" * 64, size=len(data), md5="0" * 32)


class _Source:
    """A download that breaks ``breaks`` times half way, then writes ``data`` in 1 KiB chunks."""

    def __init__(self, data: bytes, breaks: int = 0, error: Exception | None = None) -> None:
        self.data, self.breaks, self.error, self.calls = data, breaks, error, 0

    def __call__(self, dest: BinaryIO) -> FileFacts:
        self.calls += 1
        if self.error is not None:
            raise self.error
        for n in range(0, len(self.data), 1024):
            dest.write(self.data[n : n + 1024])
            if self.calls <= self.breaks and n >= 1024:
                raise TransportError("connection dropped while downloading", system="oa")
        return _facts(self.data)


def _cfg(**values: object) -> AttachmentsSection:
    return AttachmentsSection.model_validate(values)


def test_fetch_starts_over_after_a_break_and_sniffs_the_whole_file() -> None:
    source, dest = _Source(PDF * 50, breaks=1), io.BytesIO()
    got = transfer.fetch(dest, source, _cfg(download_attempts=2))
    assert isinstance(got, Fetched)
    assert got.kind == "pdf"
    assert source.calls == 2
    assert dest.getvalue() == PDF * 50, "the broken first attempt left nothing behind"


def test_fetch_gives_up_after_the_attempts_and_stops_at_the_size_limit() -> None:
    broken = transfer.fetch(io.BytesIO(), _Source(PDF * 50, breaks=5), _cfg(download_attempts=2))
    assert broken == Refusal("truncated", "下载中途中断（已尝试 2 次）")
    big, dest = _Source(PDF * 20_000), io.BytesIO()  # ~2 MB against a 1 MB limit
    refused = transfer.fetch(dest, big, _cfg(max_mb=1))
    assert isinstance(refused, Refusal)
    assert refused.reason == "too_large"
    assert len(dest.getvalue()) <= transfer.MB, "the rest is never read"
    gone = transfer.fetch(
        io.BytesIO(), _Source(b"", error=NotFoundError("gone", system="crm", status=404)), _cfg()
    )
    assert isinstance(gone, Refusal)
    assert gone.reason == "unavailable"


def test_fetch_raises_an_outage() -> None:
    never = _Source(b"", error=TransportError("connection failed", system="oa", sent=False))
    with pytest.raises(TransportError):
        transfer.fetch(io.BytesIO(), never, _cfg())


def test_attachment_ids_of_a_note() -> None:
    assert attachment_ids(" 12; 13;;12 ") == ["12", "13"]
    assert attachment_ids(None) == []
