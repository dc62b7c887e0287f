"""A document's bytes fetched on demand through the hooks, for the documents page's download (客户文件).

The bridge keeps no file content: a download reads the file from a system that holds a copy — the CRM by
its file id, the OA by the file's place in an instance (``<instance>/<widget>/<position>``, or any file of
the widget a link names) — into a temporary file, and serves it only when the SHA-256 of what arrived is
the document's identity (a file replaced in a system is never passed off as the one listed). No vendor URL,
signed or not, leaves this module: the page links to the bridge's own route.

Vendor calls use a short retry policy (a person is waiting); a system that cannot deliver is tried next.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import Engine

from bridge.hooks._files import FileFacts
from bridge.hooks._retry import RetryPolicy
from bridge.hooks.errors import VendorError
from bridge.hub import documents

log = logging.getLogger(__name__)

PAGE_RETRY = RetryPolicy(max_attempts=3, max_total_wait=8.0, backoff_base=0.3, backoff_max=3.0)
PAGE_TIMEOUT = (5.0, 60.0)  # connect, read (seconds)
MAX_TRIES = 8  # copies / candidate files read for one download at most

Fetch = Callable[[BinaryIO], FileFacts]


class DocumentUnavailable(Exception):
    """No system delivered the document's bytes; ``message`` says so in Chinese, ``tried`` what was tried."""

    def __init__(self, message: str, tried: list[str]) -> None:
        super().__init__(message)
        self.tried = tried


@dataclass
class HookSources:
    """The hooks of the Airflow Connections ``crm_default`` / ``oa_default``, built on first use."""

    crm_conn_id: str = "crm_default"
    oa_conn_id: str = "oa_default"
    _hooks: dict[str, Any] = field(default_factory=dict)

    def crm(self) -> Any:
        if "crm" not in self._hooks:
            from bridge.hooks.crm import CrmHook

            self._hooks["crm"] = CrmHook(self.crm_conn_id, retry_policy=PAGE_RETRY, timeout=PAGE_TIMEOUT)
        return self._hooks["crm"]

    def oa(self) -> Any:
        if "oa" not in self._hooks:
            from bridge.hooks.oa import OaHook

            self._hooks["oa"] = OaHook(self.oa_conn_id, retry_policy=PAGE_RETRY, timeout=PAGE_TIMEOUT)
        return self._hooks["oa"]

    def close(self) -> None:
        for hook in self._hooks.values():
            hook.close()
        self._hooks.clear()


@dataclass(frozen=True)
class Fetched:
    """The bytes of a document in ``path`` (a temporary file the caller deletes), and where they came from."""

    path: Path
    facts: FileFacts
    system: str
    file_ref: str


def _oa_place(file_ref: str) -> tuple[str, str, int] | None:
    """``<instance>/<widget>/<position>`` → its parts; None for a bare file code (not readable alone)."""
    parts = file_ref.rsplit("/", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def _oa_files(sources: HookSources, place: tuple[str, str, int | None]) -> list[Any]:
    instance, widget, index = place
    hook = sources.oa()
    return [
        f
        for f in hook.instance_files(hook.get_instance(instance))
        if f.widget_id == widget and (index is None or f.index == index)
    ]


def _crm_download(sources: HookSources, file_id: str, dest: BinaryIO) -> FileFacts:
    return cast(FileFacts, sources.crm().download(file_id, dest))


def _oa_download(sources: HookSources, file: Any, dest: BinaryIO) -> FileFacts:
    return cast(FileFacts, sources.oa().download_attachment(file, dest))


def _failed(exc: Exception) -> Fetch:
    def fetch(dest: BinaryIO) -> FileFacts:
        raise exc

    return fetch


def _plan(sha256: str, sources: HookSources, hub: Engine) -> Iterator[tuple[str, str, Fetch]]:
    """(system, reference, fetch) for every place the document may be read from: CRM copies first (one call
    each), then OA copies by their place, then the files of the OA widgets its links name."""
    with hub.connect() as conn:
        copies = documents.copies_of(conn, sha256)
        links = documents.links_of(conn, sha256)
    for copy in copies:
        if copy.system == "crm":
            yield "crm", copy.file_ref, partial(_crm_download, sources, copy.file_ref)
    places: list[tuple[str, str, int | None]] = [
        p for c in copies if c.system == "oa" and (p := _oa_place(c.file_ref))
    ]
    places += [(lk.record_id, lk.via, None) for lk in links if lk.system == "oa" and lk.via]
    for place in dict.fromkeys(places):
        try:
            found = _oa_files(sources, place)
        except VendorError as exc:  # the instance cannot be read now: counted as one failed try
            yield "oa", f"{place[0]}/{place[1]}", _failed(exc)
            continue
        for f in found:
            ref = f"{place[0]}/{place[1]}/{f.index}"
            yield "oa", ref, partial(_oa_download, sources, f)


def fetch_document(sha256: str, hub: Engine, sources: HookSources, folder: Path) -> Fetched:
    """The document's bytes in ``folder``/document, whose SHA-256 is ``sha256`` (the caller deletes the folder).

    Raises :class:`DocumentUnavailable` when no copy could be read or none had these bytes.
    """
    tried: list[str] = []
    target = folder / "document"
    for system, ref, fetch in itertools.islice(_plan(sha256, sources, hub), MAX_TRIES):
        try:
            with target.open("wb") as dest:
                facts = fetch(dest)
        except Exception as exc:  # this copy cannot be read now (vendor, network, Connection): try the next
            # the type only: a transport error's text may hold a download URL
            log.warning(
                "documents page: %s copy %s of %s not read: %s", system, ref, sha256[:12], type(exc).__name__
            )
            tried.append(f"{system}: {type(exc).__name__}")
            continue
        if facts.sha256 == sha256:
            return Fetched(target, facts, system, ref)
        log.warning("documents page: %s copy %s of %s has other bytes", system, ref, sha256[:12])
        tried.append(f"{system}: 内容已变化")
    target.unlink(missing_ok=True)
    raise DocumentUnavailable(_unavailable_text(tried), tried)


def _unavailable_text(tried: list[str]) -> str:
    if not tried:
        return "中枢库中没有这个文件在 CRM 或 OA 中的存放位置，无法取得文件。请等下一次同步后再试，或联系管理员。"
    return (
        f"暂时无法从 CRM 或 OA 取得这个文件（尝试了 {len(tried)} 处）。可能是系统暂时不可用，或文件已在来源系统中被删除、"
        "替换。请稍后重试；如仍失败，请联系管理员查看数据健康页面。"
    )
