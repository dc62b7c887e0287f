"""What both directions' attachment steps share: settings, the bounded temporary copy, the checks, quarantine.

A file travels through a temporary file on disk (never held in memory): it
is downloaded into it chunk by chunk (the hooks hash it on the way), cut off
as soon as it passes ``attachments.max_mb``, tried again when the download
breaks half way, then its kind is read from its first bytes
(:func:`bridge.attachments.sniff`) and checked against the direction's allowed
kinds. A refused file is quarantined (entity ``attachment``, one entry per
file, so the record it belongs to is never held) with a Chinese message: what,
where, what to do. Logs, audit entries and tallies carry the hash, size and
kind only — never the bytes, a name's URL or a signed URL.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple, cast

from sqlalchemy import Connection

from bridge import settings as bridge_settings
from bridge.attachments import KIND_LABELS, ContentKind, sniff
from bridge.dictionary import Problem
from bridge.hooks._files import FileFacts
from bridge.hooks.errors import BadRequestError, NotFoundError, PermissionDeniedError, TransportError
from bridge.hub.audit import AuditEvent
from bridge.settings_model import AttachmentsSection
from bridge.sync.frame import QuarantinedRecord, Run

log = logging.getLogger("bridge.sync.attachments")

MB = 1024 * 1024
ENTITY = "attachment"  # quarantine entity of a refused file (its source id: the file's place)
REASON = "attachment_refused"


def load_settings() -> AttachmentsSection:
    """``attachments`` of include/settings.yaml (with its ``BRIDGE__ATTACHMENTS__…`` overrides)."""
    return bridge_settings.load_typed().attachments


def max_bytes(cfg: AttachmentsSection) -> int:
    return int(cfg.max_mb * MB)


# ---------------------------------------------------------------- pure decisions


@dataclass(frozen=True)
class Refusal:
    """Why a file is not transferred: ``reason`` (too_large, executable, wrong_kind, truncated,
    vendor_refused, checksum) and the Chinese detail for the quarantine message."""

    reason: str
    detail_zh: str


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def too_large(size: int, limit: int, *, at_least: bool = False) -> Refusal:
    size_zh = f"{'超过 ' if at_least else ''}{size / MB:.1f} MB"
    return Refusal("too_large", f"文件过大：不能超过 {limit / MB:g} MB（本文件{size_zh}）")


def check_content(kind: str, size: int, allowed: Sequence[str], limit: int) -> Refusal | None:
    """The verdict on a downloaded file by its content: executables never, other kinds as the direction
    allows, never over ``limit`` bytes; None: accepted."""
    if kind == ContentKind.EXECUTABLE:
        return Refusal("executable", "文件内容是可执行程序（与文件名和扩展名无关），出于安全原因不传送")
    if kind not in allowed:
        names = "、".join(kind_label(k) for k in allowed)
        return Refusal("wrong_kind", f"文件内容是{kind_label(kind)}，此处只接受 {names}")
    if size > limit:
        return too_large(size, limit)
    return None


def refusal_message(name: str, where_zh: str, refusal: Refusal, todo_zh: str) -> str:
    """The quarantine message: what (the file), where (the record), why, what to do."""
    return f"附件「{name}」（{where_zh}）未传送：{refusal.detail_zh}。{todo_zh}"


def ids_with(ids: Mapping[str, Any], facts: FileFacts, kind: str) -> dict[str, Any]:
    """Audit record ids of a transfer: the record's ids plus the content's hash, size and kind (never bytes)."""
    return {**ids, "sha256": facts.sha256, "size": facts.size, "kind": kind}


# ---------------------------------------------------------------- the temporary copy


class TooLarge(Exception):
    """The download passed the size limit: stopped there, the rest never read."""


class _Capped(io.RawIOBase):
    """A write-only view of a temporary file that refuses to grow past ``limit`` bytes."""

    def __init__(self, target: BinaryIO, limit: int) -> None:
        super().__init__()
        self.target, self.limit, self.written = target, limit, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.written += len(data)
        if self.written > self.limit:
            raise TooLarge(self.written)
        return self.target.write(data)


@contextmanager
def temporary() -> Iterator[BinaryIO]:
    """A temporary file for one transfer (deleted on close, whatever happens)."""
    with tempfile.TemporaryFile(prefix="bridge-file-") as handle:
        yield cast(BinaryIO, handle)


@dataclass(frozen=True)
class Fetched:
    """A file now in the temporary copy: its facts and its kind by content."""

    facts: FileFacts
    kind: str


def fetch(
    dest: BinaryIO, download: Callable[[BinaryIO], FileFacts], cfg: AttachmentsSection
) -> Fetched | Refusal:
    """Download into ``dest`` (emptied first), at most ``max_mb``, tried ``download_attempts`` times when
    the connection breaks half way; then sniffed. A file the source no longer has (or refuses) is refused;
    a connection never made, or a vendor unavailable through its retries (an outage), is raised."""
    limit = max_bytes(cfg)
    for attempt in range(1, cfg.download_attempts + 1):
        dest.seek(0)
        dest.truncate()
        try:
            facts = download(cast(BinaryIO, _Capped(dest, limit)))
        except TooLarge as exc:
            return too_large(int(exc.args[0]), limit, at_least=True)
        except (NotFoundError, PermissionDeniedError, BadRequestError) as exc:
            return Refusal("unavailable", f"源系统中找不到该文件或不允许下载（{exc.status}）")
        except TransportError as exc:
            if not exc.sent:
                raise
            log.warning("attachment download broken off (attempt %d of %d)", attempt, cfg.download_attempts)
            continue
        dest.flush()
        dest.seek(0)
        return Fetched(facts, str(sniff(dest)))
    return Refusal("truncated", f"下载中途中断（已尝试 {cfg.download_attempts} 次）")


# ---------------------------------------------------------------- quarantine


class RefusedFile(NamedTuple):
    """A refused file: where it is (system, its place there), the message, what it is (name, hash, size,
    kind, the record's ids) and who fixes it (department, data owner)."""

    system: str
    place: str
    message: str
    payload: Mapping[str, Any]
    owner: tuple[str | None, str | None] = (None, None)


def quarantine(run: Run[Any], conn: Connection, refused: RefusedFile, refusal: Refusal) -> AuditEvent:
    """Quarantine one refused file (its own entry: the record it belongs to goes on) and count it;
    returns the audit entry of the refusal for the caller's batch."""
    run.quarantine(
        conn,
        (refused.system, ENTITY, refused.place),
        Problem(REASON, ENTITY, None, refused.message, department=refused.owner[0]),
        QuarantinedRecord(dict(refused.payload), None, refused.owner[1]),
    )
    run.tally.add("attachments_quarantined")
    run.tally.add(f"attachments_quarantined_{refusal.reason}")
    ids = {"place": refused.place, **{k: v for k, v in refused.payload.items() if k != "name"}}
    return run.audit("attachment_transfer", (refused.system, ENTITY), ids, [], "refused", refusal.reason)


__all__ = [
    "ENTITY",
    "REASON",
    "Fetched",
    "Refusal",
    "RefusedFile",
    "check_content",
    "fetch",
    "ids_with",
    "kind_label",
    "load_settings",
    "max_bytes",
    "quarantine",
    "refusal_message",
    "temporary",
    "too_large",
]
