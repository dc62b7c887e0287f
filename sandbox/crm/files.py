"""HubSpot Files v3 storage of the CRM simulator: folders, file records and the bytes on disk.

Records live in the portal's SQLite database (tables ``file_folder`` and
``file_blob``); the bytes live beside it in ``<db>.files/<id>``. An upload is
copied to a temporary file while its MD5 (HubSpot's ``fileMd5``) and size are
taken, and only a complete copy becomes a record: an upload cut off half way
leaves neither a record nor bytes behind. Signed URLs are HMAC-signed
``(file id, expiry)`` pairs checked against the server clock, so a test that
moves the clock sees a URL expire.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from sandbox.crm.errors import HubSpotError
from sandbox.crm.model import iso_ms
from sandbox.crm.store import PORTAL_ID, Clock

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS file_folder (id INTEGER PRIMARY KEY, parent_id INTEGER, name TEXT NOT NULL, "
    "path TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS file_blob (id INTEGER PRIMARY KEY, folder_id INTEGER NOT NULL, name TEXT NOT NULL, "
    "extension TEXT NOT NULL, access TEXT NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL, "
    "created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, archived INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS file_blob_md5 ON file_blob (md5, archived, folder_id)",
)
FILE_ROW = "SELECT id, folder_id, name, extension, access, size, md5, created_ms, updated_ms, archived FROM file_blob "
FOLDER_ROW = "SELECT id, parent_id, name, path, created_ms, updated_ms FROM file_folder "
FIRST_FILE_ID = 180_000_000_001
FIRST_FOLDER_ID = 170_000_000_001
ACCESS = (
    "PUBLIC_INDEXABLE",
    "PUBLIC_NOT_INDEXABLE",
    "PRIVATE",
    "HIDDEN_INDEXABLE",
    "HIDDEN_NOT_INDEXABLE",
    "HIDDEN_PRIVATE",
    "SENSITIVE",
    "HIDDEN_SENSITIVE",
)
PUBLIC_ACCESS = ("PUBLIC_INDEXABLE", "PUBLIC_NOT_INDEXABLE", "HIDDEN_INDEXABLE", "HIDDEN_NOT_INDEXABLE")
STRATEGIES = ("NONE", "REJECT", "RETURN_EXISTING")
SCOPES = ("ENTIRE_PORTAL", "EXACT_FOLDER")
CHUNK = 1 << 20
# File type by extension: IMG, DOCUMENT, AUDIO, MOVIE or OTHER (the spec's ``File.type``).
TYPES = {
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "bmp", "webp", "svg", "tif", "tiff", "ico"), "IMG"),
    **dict.fromkeys(
        ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "odt", "ods", "ofd", "rtf", "md"),
        "DOCUMENT",
    ),
    **dict.fromkeys(("mp3", "wav", "ogg", "m4a", "aac", "flac"), "AUDIO"),
    **dict.fromkeys(("mp4", "mov", "avi", "mkv", "webm", "wmv"), "MOVIE"),
}
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_SIGNED_URL_SECONDS = 3600


@dataclass
class FileLimits:
    """Run-time settings (``GET/PUT /_sim/files/config``)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    signed_url_seconds: int = DEFAULT_SIGNED_URL_SECONDS


@dataclass(frozen=True)
class UploadOptions:
    """The ``options`` JSON of an upload plus the target folder and name."""

    name: str
    access: str
    strategy: str = "NONE"
    scope: str = "ENTIRE_PORTAL"


@dataclass(frozen=True)
class Received:
    """An upload's bytes, complete, in a temporary file of the store's folder."""

    temp: Path
    size: int
    md5: str


def split_name(file_name: str) -> tuple[str, str]:
    """``"合同 A.pdf"`` → ``("合同 A", "pdf")``: HubSpot keeps name and extension apart."""
    base = file_name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        return base, ""
    return stem, ext.lower()


def normalise_path(raw: str) -> str:
    """``library/contracts/`` → ``/library/contracts``; the root is ``/``."""
    parts = [p for p in raw.strip().split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise HubSpotError(400, f"Invalid folder path: {raw}", "VALIDATION_ERROR")
    return "/" + "/".join(parts)


class FileStore:
    """Folders and files of the portal (one SQLite connection shared with the object store)."""

    def __init__(self, db: sqlite3.Connection, db_path: Path, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.root = db_path.with_suffix(".files")
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_bytes(32)
        self.limits = FileLimits()
        for stmt in SCHEMA:
            self.db.execute(stmt)
        self._drop_temps()

    def _drop_temps(self) -> None:
        """Partial uploads of a previous run (killed mid-copy) are not files."""
        for temp in self.root.glob("upload-*"):
            temp.unlink(missing_ok=True)

    def reset(self) -> None:
        self.db.execute("DELETE FROM file_blob")
        self.db.execute("DELETE FROM file_folder")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = FileLimits()

    # ------------------------------------------------------------ folders
    def folder(self, folder_id: int) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(FOLDER_ROW + "WHERE id = ?", (folder_id,)).fetchone()
        return row

    def folder_by_path(self, path: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(FOLDER_ROW + "WHERE path = ?", (path,)).fetchone()
        return row

    def create_folder(self, name: str, parent_path: str) -> tuple[Any, ...]:
        """A folder under ``parent_path`` (created as needed); 409 when it exists."""
        if not name or "/" in name:
            raise HubSpotError(400, "Folder name must be non-empty and contain no '/'", "VALIDATION_ERROR")
        parent = self.ensure_folder(parent_path)
        path = (parent[3].rstrip("/") if parent else "") + "/" + name
        if self.folder_by_path(path) is not None:
            raise HubSpotError(409, f"Folder already exists: {path}", "CONFLICT")
        return self._insert_folder(name, parent[0] if parent else None, path)

    def ensure_folder(self, path: str) -> tuple[Any, ...] | None:
        """The folder at ``path``, creating the missing ones (HubSpot: "If a path doesn't exist, the
        system will try to create one."); None for the root."""
        path = normalise_path(path)
        if path == "/":
            return None
        found = self.folder_by_path(path)
        if found is not None:
            return found
        parent_path, _, name = path.rpartition("/")
        parent = self.ensure_folder(parent_path or "/")
        return self._insert_folder(name, parent[0] if parent else None, path)

    def _insert_folder(self, name: str, parent_id: int | None, path: str) -> tuple[Any, ...]:
        now = self.clock.now_ms()
        top = self.db.execute("SELECT MAX(id) FROM file_folder").fetchone()[0]
        folder_id = max(int(top or 0) + 1, FIRST_FOLDER_ID)
        self.db.execute(
            "INSERT INTO file_folder (id, parent_id, name, path, created_ms, updated_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (folder_id, parent_id, name, path, now, now),
        )
        return (folder_id, parent_id, name, path, now, now)

    # ------------------------------------------------------------ files
    def receive(self, source: IO[bytes]) -> Received:
        """Copy an upload into a temporary file, chunk by chunk (bounded memory), refusing it once it
        passes the size limit."""
        temp = self.root / f"upload-{secrets.token_hex(8)}"
        digest = hashlib.md5()  # ruff: ignore[hashlib-insecure-hash-function] - HubSpot's fileMd5, not security
        size = 0
        try:
            with temp.open("wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > self.limits.max_bytes:
                        raise too_large(self.limits.max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return Received(temp, size, digest.hexdigest())

    def duplicate_of(self, md5: str, size: int, folder_id: int, scope: str) -> tuple[Any, ...] | None:
        """A live file with the same bytes, in the folder (EXACT_FOLDER) or anywhere (ENTIRE_PORTAL)."""
        sql = FILE_ROW + "WHERE md5 = ? AND size = ? AND archived = 0"
        args: tuple[Any, ...] = (md5, size)
        if scope == "EXACT_FOLDER":
            sql += " AND folder_id = ?"
            args += (folder_id,)
        row: tuple[Any, ...] | None = self.db.execute(sql + " ORDER BY id LIMIT 1", args).fetchone()
        return row

    def add(self, received: Received, folder_id: int, options: UploadOptions) -> tuple[Any, ...]:
        """Make the received bytes a file record (the bytes move into place before the row is written)."""
        now = self.clock.now_ms()
        top = self.db.execute("SELECT MAX(id) FROM file_blob").fetchone()[0]
        file_id = max(int(top or 0) + 1, FIRST_FILE_ID)
        name, ext = split_name(options.name)
        os.replace(received.temp, self.root / str(file_id))
        self.db.execute(
            "INSERT INTO file_blob (id, folder_id, name, extension, access, size, md5, created_ms, "
            "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (file_id, folder_id, name, ext, options.access, received.size, received.md5, now, now),
        )
        return (file_id, folder_id, name, ext, options.access, received.size, received.md5, now, now, 0)

    def get(self, file_id: int) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(FILE_ROW + "WHERE id = ?", (file_id,)).fetchone()
        return row

    def by_path(self, path: str) -> tuple[Any, ...] | None:
        """The live file at ``/folder/name.ext`` (the newest when names repeat)."""
        folder_path, _, base = path.rpartition("/")
        folder = self.folder_by_path(folder_path) if folder_path else None
        if folder_path and folder is None:
            return None
        name, ext = split_name(base)
        row: tuple[Any, ...] | None = self.db.execute(
            FILE_ROW
            + "WHERE folder_id = ? AND name = ? AND extension = ? AND archived = 0 ORDER BY id DESC LIMIT 1",
            (folder[0] if folder else 0, name, ext),
        ).fetchone()
        return row

    def live_ids(self, ids: list[int]) -> set[int]:
        """Which of ``ids`` are files that exist and are not archived."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        return {
            r[0]
            for r in self.db.execute(
                "SELECT id FROM file_blob WHERE archived = 0 AND id IN (" + marks + ")", ids
            )
        }

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM file_blob").fetchone()[0])

    def stored_blobs(self) -> list[str]:
        """Names in the bytes folder (tests: nothing but complete files)."""
        return sorted(p.name for p in self.root.iterdir())

    def chunks(self, file_id: int) -> Iterator[bytes]:
        with (self.root / str(file_id)).open("rb") as src:
            while chunk := src.read(CHUNK):
                yield chunk

    def file_path(self, row: tuple[Any, ...]) -> str:
        folder = self.folder(row[1]) if row[1] else None
        base = folder[3] if folder else ""
        return f"{base}/{row[2]}" + (f".{row[3]}" if row[3] else "")

    # ------------------------------------------------------------ signed URLs
    def sign(self, file_id: int, expires_s: int) -> str:
        return hmac.new(self.secret, f"{file_id}:{expires_s}".encode(), hashlib.sha256).hexdigest()

    def signature_ok(self, file_id: int, expires_s: int, signature: str) -> bool:
        return hmac.compare_digest(self.sign(file_id, expires_s), signature)


def too_large(limit: int) -> HubSpotError:
    return HubSpotError(
        413,
        f"File is too large: the maximum upload size is {limit} bytes",
        "VALIDATION_ERROR",
        context={"maxBytes": [str(limit)]},
    )


def file_type(extension: str) -> str:
    return TYPES.get(extension.lower(), "OTHER")


def file_json(store: FileStore, row: tuple[Any, ...], base_url: str) -> dict[str, Any]:
    """The spec's ``File`` object."""
    path = store.file_path(row)
    url = f"{base_url}/hubfs/{PORTAL_ID}{quote(path)}"
    out: dict[str, Any] = {
        "id": str(row[0]),
        "name": row[2],
        "extension": row[3],
        "type": file_type(row[3]),
        "size": row[5],
        "path": path,
        "url": url,
        "defaultHostingUrl": url,
        "access": row[4],
        "fileMd5": row[6],
        "isUsableInContent": True,
        "createdAt": iso_ms(row[7]),
        "updatedAt": iso_ms(row[8]),
        "archived": bool(row[9]),
    }
    if row[1]:
        out["parentFolderId"] = str(row[1])
    return out


def folder_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """The spec's ``Folder`` object."""
    out: dict[str, Any] = {
        "id": str(row[0]),
        "name": row[2],
        "path": row[3],
        "createdAt": iso_ms(row[4]),
        "updatedAt": iso_ms(row[5]),
        "archived": False,
    }
    if row[1]:
        out["parentFolderId"] = str(row[1])
    return out
