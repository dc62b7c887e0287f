"""Feishu approval attachments: the upload endpoint, file codes in form widgets, expiring download URLs.

``POST /approval/openapi/v2/file/upload`` (multipart ``name``, ``type`` =
``attachment`` | ``image``, ``content``; one file per call; attachment ≤ 50 MB,
image ≤ 10 MB) answers ``{code: 0, msg, data: {code, url}}`` (Feishu's
document uUDOyUjL1gjM14SN4ITN). The code goes into an ``attachmentV2`` /
``image`` widget of a create; an instance read answers those widgets with
download URLs that expire (12 h: "返回的 url 有效期为12小时，发起审批后, 每次获取
详情都会获得新的 url"), so reading the instance again is the refresh. The URLs
are signed like the ones in ``approval.yaml``'s examples (``x-orig-expires``,
``x-orig-sign``); ``GET /lark-approval-attachment/...`` serves the bytes for a
valid, unexpired URL and answers 403 otherwise.

Bytes live in ``<db>.files/<code>``; an upload is copied to a temporary file
first and becomes a code only when complete, so a cut-off upload leaves nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from sandbox.common.documents import demo_pdf
from sandbox.oa.errors import param_invalid
from sandbox.oa.forms import FILE_TYPES

if TYPE_CHECKING:
    from sandbox.oa.app import SimState

MB = 1024 * 1024
SIZE_LIMITS = {"attachment": 50 * MB, "image": 10 * MB}  # "附件上传大小限制为 50 M，图片上传大小为 10 M"
URL_TTL_S = 12 * 3600
CHUNK = 1 << 20
SH = timedelta(hours=8)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS approval_file (code TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "type TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_ms INTEGER NOT NULL)"
)


@dataclass(frozen=True)
class ApprovalFile:
    code: str
    name: str
    type: str  # attachment | image
    size: int
    sha256: str
    created_ms: int


class ApprovalFiles:
    """Uploaded approval files of the tenant: records in SQLite, bytes on disk, signed URLs."""

    def __init__(self, db_path: Path) -> None:
        self.root = db_path.with_suffix(".files")
        self.root.mkdir(parents=True, exist_ok=True)
        for temp in self.root.glob("upload-*"):  # partial uploads of a killed run
            temp.unlink(missing_ok=True)
        self.db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute(SCHEMA)
        self.lock = threading.Lock()
        self.secret = secrets.token_bytes(32)

    def reset(self) -> None:
        with self.lock:
            self.db.execute("DELETE FROM approval_file")
            for path in self.root.iterdir():
                path.unlink(missing_ok=True)

    def get(self, code: str) -> ApprovalFile | None:
        with self.lock:
            row = self.db.execute(
                "SELECT code, name, type, size, sha256, created_ms FROM approval_file WHERE code = ?", (code,)
            ).fetchone()
        return ApprovalFile(*row) if row else None

    def kind(self, code: str) -> str | None:
        found = self.get(code)
        return found.type if found else None

    def count(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(*) FROM approval_file").fetchone()[0])

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())

    def add(self, source: IO[bytes], name: str, kind: str, now_ms: int) -> ApprovalFile:
        """Copy the upload chunk by chunk; over the type's limit → 1390001 and nothing kept."""
        temp = self.root / f"upload-{secrets.token_hex(8)}"
        digest, size, limit = hashlib.sha256(), 0, SIZE_LIMITS[kind]
        try:
            with temp.open("wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise too_large(kind)
                    digest.update(chunk)
                    out.write(chunk)
            code = _file_code()
            os.replace(temp, self.root / code)
        finally:
            temp.unlink(missing_ok=True)
        found = ApprovalFile(code, name, kind, size, digest.hexdigest(), now_ms)
        with self.lock:
            self.db.execute(
                "INSERT INTO approval_file VALUES (?, ?, ?, ?, ?, ?)",
                (code, name, kind, size, found.sha256, now_ms),
            )
        return found

    def chunks(self, code: str) -> Iterator[bytes]:
        with (self.root / code).open("rb") as src:
            while chunk := src.read(CHUNK):
                yield chunk

    def sign(self, code: str, expires_s: int) -> str:
        raw = hmac.new(self.secret, f"{code}:{expires_s}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(raw[:21]).decode()

    def url(self, base: str, found: ApprovalFile, now_ms: int, ttl_s: int) -> str:
        """A download URL valid for ``ttl_s`` from ``now_ms``."""
        day = (datetime.fromtimestamp(found.created_ms / 1000, tz=UTC) + SH).strftime("%Y%m%d")
        expires_s = now_ms // 1000 + ttl_s
        return (
            f"{base}/lark-approval-attachment/{found.type}/{day}/{found.code}/{quote(found.name, safe='')}"
            f"?x-orig-authkey=sim&x-orig-expires={expires_s}&x-orig-sign={quote(self.sign(found.code, expires_s))}"
        )


def _file_code() -> str:
    raw = os.urandom(16).hex().upper()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


def too_large(kind: str) -> Exception:
    return param_invalid(f"file too large: the {kind} limit is {SIZE_LIMITS[kind] // MB} MB")


def with_urls(form_json: str, files: ApprovalFiles, base: str, now_ms: int, ttl_s: int) -> str:
    """The stored form with each file widget's codes turned into fresh download URLs (``ext``: the names)."""
    widgets = json.loads(form_json)
    for widget in widgets:
        if widget.get("type") not in FILE_TYPES or not isinstance(widget.get("value"), list):
            continue
        found = [f for f in (files.get(code) for code in widget["value"]) if f is not None]
        widget["value"] = [files.url(base, f, now_ms, ttl_s) for f in found]
        widget["ext"] = ",".join(f.name for f in found)
    return json.dumps(widgets, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- routes


def install(api: FastAPI, state: SimState) -> None:
    """The upload endpoint and the download route (then the admin routes)."""

    @api.post("/approval/openapi/v2/file/upload")
    async def upload(request: Request) -> Response:
        state.authorize(request, "files.upload")
        form = await request.form(max_files=1, max_fields=10)
        try:
            content, kind, name = form.get("content"), form.get("type"), form.get("name")
            if kind not in SIZE_LIMITS:
                raise param_invalid("type must be attachment or image")
            if not isinstance(content, UploadFile):
                raise param_invalid("content is required (one file)")
            if not isinstance(name, str) or not name.strip():
                raise param_invalid("name is required (with the file extension)")
            if content.size is not None and content.size > SIZE_LIMITS[str(kind)]:
                raise too_large(str(kind))
            found = state.files.add(content.file, name.strip(), str(kind), state.now_ms())
        finally:
            await form.close()
        url = state.files.url(_base(request), found, state.now_ms(), state.cfg.file_url_ttl_s)
        return _ok({"code": found.code, "url": url})

    @api.get("/lark-approval-attachment/{kind}/{day}/{code}/{name:path}")
    async def download(request: Request, kind: str, day: str, code: str, name: str) -> Response:
        found = state.files.get(code)
        try:
            expires_s = int(request.query_params.get("x-orig-expires", ""))
        except ValueError:
            return _forbidden("invalid signature")
        signature = request.query_params.get("x-orig-sign", "")
        if (
            found is None
            or found.type != kind
            or not hmac.compare_digest(state.files.sign(code, expires_s), signature)
        ):
            return _forbidden("invalid signature")
        if expires_s * 1000 <= state.now_ms():
            return _forbidden("url expired")
        return StreamingResponse(
            state.files.chunks(code),
            media_type="application/octet-stream",
            headers={"content-length": str(found.size)},
        )

    install_admin(api, state)


def install_admin(api: FastAPI, state: SimState) -> None:
    """Admin side (not Feishu): a person attaching a file to an instance, and a dump of the stored files."""

    @api.post("/_sim/act/attach")
    async def act_attach(request: Request) -> Response:
        """``{instance_code, file_name, content_b64, type?: attachment|image}``: a person adds a file to
        the instance's attachment (or image) widget → ``{code, instance_code}``."""
        body = await request.json()
        row = state.store.get_instance(str(body.get("instance_code", "")))
        if row is None:
            raise HTTPException(404, "no such instance")
        kind = str(body.get("type") or "attachment")
        if kind not in SIZE_LIMITS:
            raise HTTPException(400, "type must be attachment or image")
        try:
            content = base64.b64decode(str(body.get("content_b64", "")), validate=True)
        except binascii.Error as exc:
            raise HTTPException(400, "content_b64 is not base64") from exc
        found = attach_to_instance(state, row, str(body.get("file_name") or "file"), content, kind)
        return _plain({"code": found.code, "instance_code": row["instance_code"]})

    @api.post("/_sim/act/attach_invoices")
    async def act_attach_invoices(request: Request) -> Response:
        """Seed data: ``{count: 3, seed: 1}`` → an invoice PDF (``sandbox.common.documents.demo_pdf``, bytes
        fixed by serial number and seed) in the attachment widget of each of the first ``count`` APPROVED
        费用报销 instances (by start time) → ``{attached: [{instance_code, code, sha256}]}``."""
        body = await request.json()
        count, seed = int(body.get("count", 3)), int(body.get("seed", 1))
        rows, _ = state.store.dump(
            approval_code=state.by_key["expense_claim"].code,
            status="APPROVED",
            user_id=None,
            uuid=None,
            origin=None,
            offset=0,
            limit=count,
        )
        attached = []
        for row in rows:
            name = f"发票-{row['serial_number']}.pdf"
            found = attach_to_instance(
                state, row, name, demo_pdf(f"发票 {row['serial_number']}", seed), "attachment"
            )
            attached.append(
                {"instance_code": row["instance_code"], "code": found.code, "sha256": found.sha256}
            )
        return _plain({"attached": attached})

    @api.get("/_sim/files")
    async def files_dump() -> Response:
        return _plain({"files": state.files.count(), "stored": state.files.stored()})


def attach_to_instance(
    state: SimState, row: Mapping[str, Any], name: str, content: bytes, kind: str
) -> ApprovalFile:
    """Store the file and append its code to the instance's first widget of that kind."""
    found = state.files.add(io.BytesIO(content), name, kind, state.now_ms())
    state.store.update_instance(
        row["instance_code"], {"form_json": _add_code(row["form_json"], kind, found.code)}
    )
    return found


def _add_code(form_json: str, kind: str, code: str) -> str:
    """Append ``code`` to the first widget of ``kind``'s file type (the widget gets a value if it had none)."""
    widgets = json.loads(form_json)
    target = next((w for w in widgets if FILE_TYPES.get(w.get("type", "")) == kind), None)
    if target is None:
        wid, wtype, name = (
            ("attachments", "attachmentV2", "附件") if kind == "attachment" else ("images", "image", "图片")
        )
        target = {"id": wid, "name": name, "type": wtype, "value": []}
        widgets.append(target)
    target["value"] = [*target.get("value", []), code]
    return json.dumps(widgets, ensure_ascii=False, separators=(",", ":"))


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _ok(data: Mapping[str, Any]) -> Response:
    return Response(
        json.dumps({"code": 0, "msg": "success", "data": data}, ensure_ascii=False),
        media_type="application/json; charset=utf-8",
    )


def _plain(body: Mapping[str, Any]) -> Response:
    """An admin answer (not Feishu's envelope)."""
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")


def _forbidden(reason: str) -> Response:
    return Response(f"403 Forbidden: {reason}".encode(), status_code=403, media_type="text/plain")
