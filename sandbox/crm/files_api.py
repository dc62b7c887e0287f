"""HubSpot Files v3 routes (``sandbox/specs/hubspot/files-v3.json``) and the file-serving routes.

``/files/v3/...`` needs a bearer token like ``/crm/...`` (``GateMiddleware``).
``/hubfs/{portal}/{path}`` serves the bytes as HubSpot's file hosting does:
public files to anyone, private files only with a valid, unexpired signature
from ``GET /files/v3/files/{fileId}/signed-url``; anything else is a 403.
The admin side (``/_sim/files``) sets the size limit and lists the stored
bytes, and ``/_sim/act/attach`` is a person attaching a file to a record.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import FormData, UploadFile

from sandbox.common.documents import demo_pdf
from sandbox.crm.app import Sim, json_response
from sandbox.crm.errors import HubSpotError
from sandbox.crm.files import (
    ACCESS,
    PUBLIC_ACCESS,
    SCOPES,
    STRATEGIES,
    FileStore,
    Received,
    UploadOptions,
    file_json,
    file_type,
    folder_json,
    normalise_path,
    too_large,
)
from sandbox.crm.model import ObjectType, iso_ms, resolve_type
from sandbox.crm.store import PORTAL_ID

router = APIRouter()
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600
CONTRACT_STAGES = ("contractsent", "closedwon")


def _sim(request: Request) -> Sim:
    sim: Sim = request.app.state.sim
    return sim


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _bad(message: str) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR")


def _file_id(raw: str) -> int:
    if not raw.isdigit():
        raise _bad(f"Invalid file id: {raw}")
    return int(raw)


def _live_file(files: FileStore, raw: str) -> tuple[Any, ...]:
    row = files.get(_file_id(raw))
    if row is None or row[9]:
        raise HubSpotError(404, f"File not found: {raw}", "OBJECT_NOT_FOUND", context={"id": [raw]})
    return row


# ------------------------------------------------------------------ upload


def parse_options(raw: Any, name: str) -> UploadOptions:
    """The ``options`` form field: a JSON string with ``access`` (required, as HubSpot's files guide says),
    ``duplicateValidationStrategy`` and ``duplicateValidationScope``."""
    if not isinstance(raw, str) or not raw.strip():
        raise _bad("options is required: a JSON object with access")
    try:
        opts = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad("options is not valid JSON") from None
    if not isinstance(opts, dict):
        raise _bad("options must be a JSON object")
    access = opts.get("access")
    if access not in ACCESS:
        raise _bad(f"options.access must be one of {list(ACCESS)}")
    strategy = opts.get("duplicateValidationStrategy", "NONE")
    scope = opts.get("duplicateValidationScope", "ENTIRE_PORTAL")
    if strategy not in STRATEGIES:
        raise _bad(f"options.duplicateValidationStrategy must be one of {list(STRATEGIES)}")
    if scope not in SCOPES:
        raise _bad(f"options.duplicateValidationScope must be one of {list(SCOPES)}")
    return UploadOptions(name=name, access=str(access), strategy=str(strategy), scope=str(scope))


def _target_folder(files: FileStore, form: FormData) -> int:
    """``folderId`` or ``folderPath``, exactly one (``files-v3.json``); a missing path is created."""
    folder_id, folder_path = form.get("folderId"), form.get("folderPath")
    if (folder_id is None) == (folder_path is None):
        raise _bad("Exactly one of folderId or folderPath is required")
    if isinstance(folder_id, str):
        if not folder_id.isdigit() or files.folder(int(folder_id)) is None:
            raise HubSpotError(404, f"Folder not found: {folder_id}", "OBJECT_NOT_FOUND")
        return int(folder_id)
    folder = files.ensure_folder(str(folder_path))
    return int(folder[0]) if folder else 0


def store_upload(
    files: FileStore,
    received: Received,
    folder_id: int,
    options: UploadOptions,
) -> tuple[tuple[Any, ...], int]:
    """Apply the duplicate strategy: ``(file row, HTTP status)``; the temp copy is gone either way.
    RETURN_EXISTING answers the existing file with 201, the only success status ``files-v3.json`` gives
    the upload (a client tells a returned file by its id)."""
    if options.strategy != "NONE":
        existing = files.duplicate_of(received.md5, received.size, folder_id, options.scope)
        if existing is not None:
            received.temp.unlink(missing_ok=True)
            if options.strategy == "REJECT":
                raise HubSpotError(
                    409,
                    f"Duplicate file found: file {existing[0]} has the same content",
                    "CONFLICT",
                    context={"existingFileId": [str(existing[0])]},
                )
            return existing, 201
    return files.add(received, folder_id, options), 201


@router.post("/files/v3/files")
async def upload(request: Request) -> Response:
    """``POST /files/v3/files`` (multipart): ``file``, ``fileName``, ``folderId``|``folderPath``, ``options``."""
    files = _sim(request).files
    form = await request.form(max_files=1, max_fields=20)
    try:
        content = form.get("file")
        if not isinstance(content, UploadFile):
            raise _bad("file is required (a multipart file part)")
        if content.size is not None and content.size > files.limits.max_bytes:
            raise too_large(files.limits.max_bytes)
        name = form.get("fileName") or content.filename or "file"
        options = parse_options(form.get("options"), str(name))
        folder_id = _target_folder(files, form)
        received = files.receive(content.file)
        row, status = store_upload(files, received, folder_id, options)
    finally:
        await form.close()
    headers = {"Location": f"{_base(request)}/files/v3/files/{row[0]}"}
    return json_response(file_json(files, row, _base(request)), status, headers)


# ------------------------------------------------------------------ files


@router.get("/files/v3/files/{file_id}")
async def get_file(request: Request, file_id: str) -> Response:
    files = _sim(request).files
    return json_response(file_json(files, _live_file(files, file_id), _base(request)))


@router.get("/files/v3/files/{file_id}/signed-url")
async def signed_url(request: Request, file_id: str) -> Response:
    """A URL that downloads the file until ``expiresAt`` (``expirationSeconds``, default the configured
    lifetime); anyone holding it can read the file (the spec's ``SignedUrl``)."""
    sim = _sim(request)
    row = _live_file(sim.files, file_id)
    raw = request.query_params.get("expirationSeconds")
    try:
        seconds = int(raw) if raw is not None else sim.files.limits.signed_url_seconds
    except ValueError:
        raise _bad("expirationSeconds must be an integer") from None
    if not 1 <= seconds <= MAX_SIGNED_URL_SECONDS:
        raise _bad(f"expirationSeconds must be between 1 and {MAX_SIGNED_URL_SECONDS}")
    expires_s = sim.clock.now_ms() // 1000 + seconds
    path = quote(sim.files.file_path(row))
    url = (
        f"{_base(request)}/hubfs/{PORTAL_ID}{path}?Expires={expires_s}"
        f"&Signature={sim.files.sign(row[0], expires_s)}&Key-Pair-Id=sim-{row[0]}"
    )
    return json_response(
        {
            "url": url,
            "expiresAt": iso_ms(expires_s * 1000),
            "name": row[2],
            "extension": row[3],
            "type": file_type(row[3]),
            "size": row[5],
        }
    )


@router.get("/files/v3/files/{file_id}/download")
async def download(request: Request, file_id: str) -> Response:
    """The bytes as a direct download (HubSpot's files guide recommends it for sensitive files)."""
    files = _sim(request).files
    row = _live_file(files, file_id)
    return _stream(files, row)


def _stream(files: FileStore, row: tuple[Any, ...]) -> Response:
    name = row[2] + (f".{row[3]}" if row[3] else "")
    return StreamingResponse(
        files.chunks(row[0]),
        media_type="application/octet-stream",
        headers={
            "content-length": str(row[5]),
            "content-disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        },
    )


@router.get("/hubfs/{portal}/{path:path}")
async def hosted(request: Request, portal: str, path: str) -> Response:
    """File hosting: public files to anyone; private ones only with a valid, unexpired signed URL."""
    sim = _sim(request)
    key_pair = request.query_params.get("Key-Pair-Id", "")
    row = sim.files.by_path("/" + path) if portal == str(PORTAL_ID) else None
    if row is None:
        return _denied("NoSuchKey", "The specified key does not exist.", 404)
    if row[4] in PUBLIC_ACCESS and not key_pair:
        return _stream(sim.files, row)
    try:
        expires_s = int(request.query_params.get("Expires", ""))
    except ValueError:
        return _denied("AccessDenied", "Access denied")
    if not sim.files.signature_ok(row[0], expires_s, request.query_params.get("Signature", "")):
        return _denied("AccessDenied", "Access denied")
    if expires_s * 1000 <= sim.clock.now_ms():
        return _denied("AccessDenied", "Request has expired")
    return _stream(sim.files, row)


def _denied(code: str, message: str, status: int = 403) -> Response:
    """A CDN refusal (XML, as a signed-URL host answers)."""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body.encode(), status_code=status, media_type="text/xml")


# ------------------------------------------------------------------ folders


@router.post("/files/v3/folders")
async def create_folder(request: Request) -> Response:
    """``{name, parentFolderId | parentPath}`` → 201 ``Folder`` (``FolderInput``: not both parents)."""
    files = _sim(request).files
    try:
        body = orjson.loads(await request.body() or b"null")
    except orjson.JSONDecodeError:
        raise _bad("Invalid input JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise _bad("name is required")
    parent_id, parent_path = body.get("parentFolderId"), body.get("parentPath")
    if parent_id is not None and parent_path is not None:
        raise _bad("parentFolderId and parentPath cannot be set at the same time")
    if parent_id is not None:
        parent = files.folder(int(parent_id)) if str(parent_id).isdigit() else None
        if parent is None:
            raise HubSpotError(404, f"Folder not found: {parent_id}", "OBJECT_NOT_FOUND")
        parent_path = parent[3]
    row = files.create_folder(body["name"], str(parent_path or "/"))
    return json_response(folder_json(row), 201)


@router.get("/files/v3/folders/{ref:path}")
async def get_folder(request: Request, ref: str) -> Response:
    """By id (digits) or by path (``/files/v3/folders/{folderPath}``)."""
    files = _sim(request).files
    row = files.folder(int(ref)) if ref.isdigit() else files.folder_by_path(normalise_path(ref))
    if row is None:
        raise HubSpotError(404, f"Folder not found: {ref}", "OBJECT_NOT_FOUND")
    return json_response(folder_json(row))


# ------------------------------------------------------------------ admin


@router.get("/_sim/files/config")
async def files_config_get(request: Request) -> Response:
    limits = _sim(request).files.limits
    return json_response({"max_bytes": limits.max_bytes, "signed_url_seconds": limits.signed_url_seconds})


@router.put("/_sim/files/config")
async def files_config_set(request: Request) -> Response:
    """``{max_bytes?, signed_url_seconds?}``: the upload size limit and the default signed-URL lifetime."""
    files = _sim(request).files
    body = orjson.loads(await request.body() or b"{}")
    if "max_bytes" in body:
        files.limits.max_bytes = int(body["max_bytes"])
    if "signed_url_seconds" in body:
        files.limits.signed_url_seconds = int(body["signed_url_seconds"])
    return await files_config_get(request)


@router.get("/_sim/files")
async def files_dump(request: Request) -> Response:
    """How many file records exist and which names the bytes folder holds (tests of interrupted uploads)."""
    files = _sim(request).files
    return json_response({"files": files.count(), "stored": files.stored_blobs()})


@dataclass(frozen=True)
class Attachment:
    """What a person attaches to a record (admin acts)."""

    target: ObjectType
    record_id: int
    file_name: str
    content: bytes
    folder_path: str = "/attachments"
    access: str = "PRIVATE"
    note_body: str = ""


def attach(sim: Sim, item: Attachment) -> tuple[tuple[Any, ...], int]:
    """Store the file (same bytes in the same folder: the existing file) and associate a note carrying its
    id in ``hs_attachment_ids`` → ``(file row, note id)``."""
    folder = sim.files.ensure_folder(item.folder_path)
    options = UploadOptions(
        name=item.file_name, access=item.access, strategy="RETURN_EXISTING", scope="EXACT_FOLDER"
    )
    received = sim.files.receive(io.BytesIO(item.content))
    row, _ = store_upload(sim.files, received, int(folder[0]) if folder else 0, options)
    notes = resolve_type("notes")
    assert notes is not None
    props = {
        "hs_timestamp": str(sim.clock.now_ms()),
        "hs_attachment_ids": str(row[0]),
        "hs_note_body": item.note_body,
    }
    with sim.store.transaction():
        note = sim.store.create(notes, props, None, [(item.target.name, item.record_id, False)])
    return row, int(note[0])


@router.post("/_sim/act/attach")
async def act_attach(request: Request) -> Response:
    """A person attaches a file to a record: ``{object_type, id, file_name, content_b64, folder_path?, access?,
    note_body?}`` → the file is stored (PRIVATE by default) and a note with ``hs_attachment_ids`` is associated."""
    sim = _sim(request)
    body = orjson.loads(await request.body() or b"{}")
    target = resolve_type(str(body.get("object_type")))
    if target is None or target.name not in ("deals", "companies", "contacts"):
        raise _bad("object_type must be deals, companies or contacts")
    record_id = int(body.get("id", 0))
    if sim.store.get(target, record_id) is None:
        raise HubSpotError(404, f"no live {target.singular} {record_id}", "OBJECT_NOT_FOUND")
    try:
        content = base64.b64decode(str(body.get("content_b64", "")), validate=True)
    except binascii.Error:
        raise _bad("content_b64 is not base64") from None
    item = Attachment(
        target,
        record_id,
        str(body.get("file_name") or "file"),
        content,
        str(body.get("folder_path") or "/attachments"),
        str(body.get("access", "PRIVATE")),
        str(body.get("note_body") or ""),
    )
    row, note_id = attach(sim, item)
    return json_response({"file": file_json(sim.files, row, _base(request)), "note_id": str(note_id)}, 201)


@router.post("/_sim/act/attach_contracts")
async def act_attach_contracts(request: Request) -> Response:
    """Seed data: ``{count: 3, seed: 1}`` → a signed-contract PDF (``sandbox.common.documents.demo_pdf``,
    bytes fixed by deal id and seed) attached by a note to each of the first ``count`` live deals at
    ``contractsent`` or ``closedwon``, PRIVATE, in ``/contracts`` → ``{attached: [{deal_id, file_id, note_id,
    file_md5}]}``."""
    sim = _sim(request)
    body = orjson.loads(await request.body() or b"{}")
    count, seed = int(body.get("count", 3)), int(body.get("seed", 1))
    deals = resolve_type("deals")
    assert deals is not None
    attached = []
    for deal_id, name in _contract_deals(sim, deals, count):
        item = Attachment(
            deals,
            deal_id,
            f"合同-{name}.pdf",
            demo_pdf(f"合同 {deal_id} {name}", seed),
            "/contracts",
            note_body="已签署合同扫描件",
        )
        row, note_id = attach(sim, item)
        attached.append(
            {"deal_id": str(deal_id), "file_id": str(row[0]), "note_id": str(note_id), "file_md5": row[6]}
        )
    return json_response({"attached": attached}, 201)


def _contract_deals(sim: Sim, deals: ObjectType, count: int) -> list[tuple[int, str]]:
    """The first ``count`` live deals (by id) whose stage means a contract exists."""
    found: list[tuple[int, str]] = []
    after = 0
    while len(found) < count:
        rows = sim.store.list_page(deals, after, 1000, False)
        for row in rows[:1000]:
            props = orjson.loads(row[5])
            if props.get("dealstage") in CONTRACT_STAGES and len(found) < count:
                found.append((int(row[0]), str(props.get("dealname") or row[0])))
        if len(rows) <= 1000:
            return found
        after = int(rows[1000][0])
    return found
