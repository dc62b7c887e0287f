"""HubSpot Files v3 for :class:`~bridge.hooks.crm.CrmHook`: upload, read, signed URL, streamed download.

Vendor knowledge kept here: ``POST /files/v3/files`` (multipart ``file``,
``fileName``, ``folderPath``, ``options`` as a JSON string with ``access`` —
required — and ``duplicateValidationStrategy``), ``GET /files/v3/files/{id}``,
``GET /files/v3/files/{id}/signed-url?expirationSeconds=`` and the ``File``
answer (``name`` without its extension, ``fileMd5``). The app needs the
``files`` scope.

An upload is a write without a key: once its body may have reached HubSpot,
it is never resent by the plumbing (an interruption is
:class:`~bridge.hooks.errors.AmbiguousWriteError`). ``duplicate=
"RETURN_EXISTING"`` (the default) is what makes the caller's retry safe:
HubSpot answers the file already holding the same bytes instead of storing a
second copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import orjson

from bridge.attachments import safe_file_name
from bridge.hooks._base import VendorHook
from bridge.hooks._files import Download, FileFacts, FilePart, MultipartBody, fetch_refreshing, stream_size
from bridge.hooks._http import WRITE_ONCE
from bridge.hooks.errors import BadResponseError

FILES = "/files/v3/files"
FILE = "/files/v3/files/{file_id}"
SIGNED_URL = "/files/v3/files/{file_id}/signed-url"
SIGNED_DOWNLOAD = "/hubfs/{portal}/{path}"  # the signed URL's host path, as counted in ``api_calls``
DOWNLOAD_URL_SECONDS = 300  # a signed URL only lives for the download it is minted for
ACCESS_PRIVATE = "PRIVATE"
RETURN_EXISTING = "RETURN_EXISTING"
NOTES = "notes"
ATTACHMENT_IDS = "hs_attachment_ids"  # a note's (or meeting's) files: ``;``-separated file ids


@dataclass(frozen=True)
class CrmFile:
    """A file in HubSpot's file manager: ``name`` without its extension (as HubSpot keeps it), ``md5`` is
    HubSpot's ``fileMd5`` of the bytes (None when it does not say), ``path`` its folder path and name."""

    id: str
    name: str
    extension: str
    size: int
    md5: str | None
    access: str
    path: str | None

    @property
    def file_name(self) -> str:
        """The name with its extension."""
        return f"{self.name}.{self.extension}" if self.extension else self.name


def crm_file_of(obj: object) -> CrmFile:
    """The :class:`CrmFile` of a ``File`` answer; :class:`BadResponseError` without an id or a size."""
    body: Mapping[str, Any] = obj if isinstance(obj, Mapping) else {}
    file_id, size = body.get("id"), body.get("size")
    if file_id in (None, "") or not isinstance(size, int):
        raise BadResponseError("the File answer has no id or size", system="crm", path=FILE)
    md5, path = body.get("fileMd5"), body.get("path")
    return CrmFile(
        id=str(file_id),
        name=str(body.get("name") or ""),
        extension=str(body.get("extension") or ""),
        size=size,
        md5=md5 if isinstance(md5, str) and md5 else None,
        access=str(body.get("access") or ""),
        path=path if isinstance(path, str) else None,
    )


def upload_fields(name: str, folder_path: str, access: str, duplicate: str) -> list[tuple[str, str]]:
    """The text parts of an upload (``options`` is a JSON string, as the endpoint takes it)."""
    options = {"access": access, "duplicateValidationStrategy": duplicate}
    return [("fileName", name), ("folderPath", folder_path), ("options", orjson.dumps(options).decode())]


@dataclass(frozen=True)
class AttachedFile:
    """A file attached to a record: the file id and the note that holds it (HubSpot attaches through notes)."""

    file_id: str
    holder_id: str


def attachment_ids(raw: object) -> list[str]:
    """The file ids of an ``hs_attachment_ids`` value (``;``-separated, spaces dropped, order kept)."""
    if not isinstance(raw, str):
        return []
    return list(dict.fromkeys(p.strip() for p in raw.split(";") if p.strip()))


class _Outcome(Protocol):
    """What the mixin reads of CrmHook's RecordOutcome (structural: this module does not import crm.py)."""

    @property
    def key(self) -> str: ...
    @property
    def id(self) -> str | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str | None: ...
    @property
    def object(self) -> Mapping[str, Any] | None: ...


class _Records(Protocol):
    def read_associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]: ...

    def batch_read(
        self,
        object_type: str,
        records: Sequence[str],
        id_property: str | None = None,
        properties: Sequence[str] = (),
    ) -> Sequence[_Outcome]: ...

    def batch_update(self, object_type: str, records: Sequence[Mapping[str, Any]]) -> Sequence[_Outcome]: ...


def _files_of(hook: _Records, object_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
    """The attachment ids of each record (id → file ids) by one batch read."""
    found: dict[str, list[str]] = {}
    for outcome in hook.batch_read(object_type, list(ids), properties=[ATTACHMENT_IDS]):
        props = (outcome.object or {}).get("properties") if outcome.ok else None
        if outcome.id and isinstance(props, Mapping):
            found[str(outcome.id)] = attachment_ids(props.get(ATTACHMENT_IDS))
    return found


class CrmFiles(VendorHook):
    """The file methods of :class:`~bridge.hooks.crm.CrmHook` (a mixin: the hook inherits them)."""

    def upload_file(
        self,
        stream: BinaryIO,
        *,
        name: str,
        folder_path: str,
        access: str = ACCESS_PRIVATE,
        duplicate: str = RETURN_EXISTING,
    ) -> CrmFile:
        """Upload the rest of ``stream`` (seekable, read chunk by chunk while sent) as ``name`` (sanitised)
        into ``folder_path`` (created when missing). With ``RETURN_EXISTING`` the same bytes already stored
        give back that file: retry an :class:`AmbiguousWriteError` with it and nothing is stored twice."""
        safe = safe_file_name(name)
        body = MultipartBody(
            upload_fields(safe, folder_path, access, duplicate),
            FilePart("file", safe, stream, stream_size(stream)),
        )
        stored = crm_file_of(self.call("POST", FILES, body=body, send=WRITE_ONCE).body)
        self.vendor_log.info("crm: file %s stored (%d bytes, md5 %s)", stored.id, stored.size, stored.md5)
        return stored

    def file(self, file_id: str) -> CrmFile:
        """The file's record (:class:`NotFoundError` when it does not exist or was archived)."""
        return crm_file_of(self.call("GET", FILE, path_params={"file_id": file_id}).body)

    def signed_url(self, file_id: str, expires_s: int = DOWNLOAD_URL_SECONDS) -> str:
        """A URL that downloads the (private) file without a token for ``expires_s`` seconds. Anyone holding
        it can read the file: never log it, never show it to a role that may not see the file."""
        answer = self.call(
            "GET", SIGNED_URL, path_params={"file_id": file_id}, params={"expirationSeconds": expires_s}
        )
        url = answer.body.get("url") if isinstance(answer.body, Mapping) else None
        if not isinstance(url, str) or not url:
            raise BadResponseError("the signed-URL answer has no url", system="crm", path=SIGNED_URL)
        return url

    def download(self, file_id: str, dest: BinaryIO, url: str | None = None) -> FileFacts:
        """Stream the file's bytes into ``dest`` through a signed URL (``url``, one minted earlier, or a new
        one), with their SHA-256, MD5 and size taken on the way; a URL refused as expired is replaced once
        by a fresh one."""

        def fresh() -> Download:
            return Download(self.signed_url(file_id), SIGNED_DOWNLOAD)

        first = Download(url, SIGNED_DOWNLOAD) if url else None
        return fetch_refreshing(self.client, fresh, dest, first)

    def attached_files(self: _Records, object_type: str, ids: Sequence[str]) -> dict[str, list[AttachedFile]]:
        """The files attached to each record (every asked id is a key) through the notes associated with it:
        one association read and one batch read of the notes."""
        notes = self.read_associations(object_type, NOTES, [str(i) for i in ids])
        note_ids = list(dict.fromkeys(n for found in notes.values() for n in found))
        files = _files_of(self, NOTES, note_ids) if note_ids else {}
        return {
            record: [AttachedFile(f, note) for note in found for f in files.get(note, [])]
            for record, found in notes.items()
        }

    def add_attachments(
        self: _Records, object_type: str, files: Mapping[str, Sequence[str]]
    ) -> dict[str, str | None]:
        """Add file ids to the attachments of engagements (notes, meetings) that exist: what they hold is
        read first and kept, an engagement already holding them all is not written. → id → None when done,
        else HubSpot's refusal (the other engagements are still written)."""
        wanted = {str(k): [str(f) for f in v] for k, v in files.items() if v}
        if not wanted:
            return {}
        held = _files_of(self, object_type, list(wanted))
        updates = []
        out: dict[str, str | None] = {}
        for record, new in wanted.items():
            if record not in held:
                out[record] = "not found"
                continue
            merged = list(dict.fromkeys([*held[record], *new]))
            out[record] = None
            if merged != held[record]:
                updates.append({"id": record, "properties": {ATTACHMENT_IDS: ";".join(merged)}})
        for outcome in self.batch_update(object_type, updates) if updates else []:
            if not outcome.ok:
                out[str(outcome.key)] = outcome.message or "refused"
        return out


__all__ = ["AttachedFile", "CrmFile", "CrmFiles", "attachment_ids", "crm_file_of"]
