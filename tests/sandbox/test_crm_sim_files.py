"""HubSpot Files v3 in the CRM simulator, over real HTTP: upload, read, signed URLs, duplicates, access,
size limit, interrupted uploads, folders, and notes that carry ``hs_attachment_ids``.

Every answer of a Files endpoint is validated against ``files-v3.json`` with the conformance helper.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm, specs_dir  # noqa: F401
from tests.sandbox.test_crm_sim_conformance import Spec, check

from sandbox.common.world import World

WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)
DEAL = WORLD.deal(3).id
FILES = "/files/v3/files"
SPECS_DIR = specs_dir()


@pytest.fixture(scope="module")
def files_spec() -> Spec | None:
    return Spec(SPECS_DIR / "hubspot" / "files-v3.json") if SPECS_DIR is not None else None


@pytest.fixture(scope="module", autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


@pytest.fixture(autouse=True)
def _clean(crm: Crm) -> Iterator[None]:  # noqa: F811
    yield
    crm.admin("DELETE", "/faults")
    crm.admin("PUT", "/files/config", {"max_bytes": 512 * 1024 * 1024, "signed_url_seconds": 3600})
    crm.admin("POST", "/clock", {"offset_ms": 0})


def conform(spec: Spec | None, template: str, resp: requests.Response, status: int) -> Any:
    """The answer has ``status`` and, when the spec is present, validates against it."""
    if spec is None:
        assert resp.status_code == status, resp.text[:300]
        return resp.json()
    return check({"files-v3": spec}, "files-v3", template, resp, status)


def upload(crm: Crm, content: bytes, name: str = "合同扫描件.pdf", **fields: Any) -> requests.Response:  # noqa: F811
    options = fields.pop("options", {"access": "PRIVATE"})
    data = {"fileName": name, "options": json.dumps(options), **fields}
    if "folderId" not in data and "folderPath" not in data:
        data["folderPath"] = "/bridge/contracts"
    return crm.call("POST", FILES, files={"file": (name, content, "application/pdf")}, data=data)


def pdf(tag: str) -> bytes:
    return b"%PDF-1.7\n" + tag.encode() + os.urandom(2048)


def test_upload_get_signed_url_download(crm: Crm, files_spec: Spec | None) -> None:  # noqa: F811
    content = pdf("roundtrip")
    made = conform(files_spec, FILES, upload(crm, content), 201)
    assert made["name"] == "合同扫描件"
    assert made["extension"] == "pdf"
    assert made["type"] == "DOCUMENT"
    assert made["size"] == len(content)
    assert made["access"] == "PRIVATE"
    assert made["fileMd5"] == hashlib.md5(content).hexdigest()
    assert made["path"] == "/bridge/contracts/合同扫描件.pdf"
    got = conform(files_spec, FILES + "/{fileId}", crm.call("GET", f"{FILES}/{made['id']}"), 200)
    assert got == made
    signed = conform(
        files_spec, FILES + "/{fileId}/signed-url", crm.call("GET", f"{FILES}/{made['id']}/signed-url"), 200
    )
    assert signed["size"] == len(content)
    assert signed["name"] == "合同扫描件"
    assert requests.get(signed["url"], timeout=10).content == content  # no token: the URL is the key
    direct = crm.call("GET", f"{FILES}/{made['id']}/download")
    assert direct.status_code == 200
    assert direct.content == content


def test_private_file_needs_a_signature(crm: Crm) -> None:  # noqa: F811
    made = upload(crm, pdf("private")).json()
    assert requests.get(made["url"], timeout=10).status_code == 403
    signed = crm.call("GET", f"{FILES}/{made['id']}/signed-url").json()
    parts = urlsplit(signed["url"])
    forged = signed["url"].replace("Signature=", "Signature=0")
    assert requests.get(forged, timeout=10).status_code == 403
    assert parts.path == urlsplit(made["url"]).path


def test_public_file_is_served_without_signature(crm: Crm) -> None:  # noqa: F811
    content = pdf("public")
    made = upload(crm, content, "brochure.pdf", options={"access": "PUBLIC_NOT_INDEXABLE"}).json()
    assert requests.get(made["url"], timeout=10).content == content


def test_signed_url_expires(crm: Crm) -> None:  # noqa: F811
    made = upload(crm, pdf("expiry")).json()
    signed = crm.call("GET", f"{FILES}/{made['id']}/signed-url", params={"expirationSeconds": 60}).json()
    assert requests.get(signed["url"], timeout=10).status_code == 200
    crm.admin("POST", "/clock", {"advance_ms": 61_000})
    late = requests.get(signed["url"], timeout=10)
    assert late.status_code == 403
    assert b"expired" in late.content
    fresh = crm.call("GET", f"{FILES}/{made['id']}/signed-url").json()
    assert requests.get(fresh["url"], timeout=10).status_code == 200


def test_default_signed_url_lifetime_is_configurable(crm: Crm) -> None:  # noqa: F811
    made = upload(crm, pdf("config")).json()
    crm.admin("PUT", "/files/config", {"signed_url_seconds": 5})
    signed = crm.call("GET", f"{FILES}/{made['id']}/signed-url").json()
    crm.admin("POST", "/clock", {"advance_ms": 6_000})
    assert requests.get(signed["url"], timeout=10).status_code == 403


def test_duplicate_strategies(crm: Crm, files_spec: Spec | None) -> None:  # noqa: F811
    content = pdf("duplicate")
    first = upload(crm, content).json()
    again = upload(crm, content, "renamed.pdf", options={"access": "PRIVATE"})
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]
    same = upload(
        crm,
        content,
        "renamed2.pdf",
        options={"access": "PRIVATE", "duplicateValidationStrategy": "RETURN_EXISTING"},
    )
    assert conform(files_spec, FILES, same, 201)["id"] == first["id"]
    refused = upload(
        crm, content, "renamed3.pdf", options={"access": "PRIVATE", "duplicateValidationStrategy": "REJECT"}
    )
    body = conform(files_spec, FILES, refused, 409)
    assert body["category"] == "CONFLICT"
    assert body["context"]["existingFileId"] == [first["id"]]


def test_duplicate_scope_exact_folder(crm: Crm) -> None:  # noqa: F811
    content = pdf("scope")
    first = upload(crm, content, folderPath="/bridge/a").json()
    options = {
        "access": "PRIVATE",
        "duplicateValidationStrategy": "REJECT",
        "duplicateValidationScope": "EXACT_FOLDER",
    }
    other = upload(crm, content, folderPath="/bridge/b", options=options)
    assert other.status_code == 201  # not a duplicate within /bridge/b
    assert upload(crm, content, folderPath="/bridge/a", options=options).status_code == 409
    options["duplicateValidationScope"] = "ENTIRE_PORTAL"
    assert upload(crm, content, folderPath="/bridge/c", options=options).json()["context"][
        "existingFileId"
    ] == [first["id"]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"options": {}}, "access"),
        ({"options": {"access": "SECRET"}}, "access"),
        (
            {"options": {"access": "PRIVATE", "duplicateValidationStrategy": "MAYBE"}},
            "duplicateValidationStrategy",
        ),
        ({"folderId": "1", "folderPath": "/x"}, "Exactly one"),
    ],
)
def test_bad_upload_requests_are_refused(
    crm: Crm,  # noqa: F811
    files_spec: Spec | None,
    fields: dict[str, Any],
    message: str,
) -> None:
    body = conform(files_spec, FILES, upload(crm, pdf("bad"), **fields), 400)
    assert message in body["message"]


def test_size_limit_refusal_stores_nothing(crm: Crm, files_spec: Spec | None) -> None:  # noqa: F811
    crm.admin("PUT", "/files/config", {"max_bytes": 100_000})
    before = crm.admin("GET", "/files")
    body = conform(files_spec, FILES, upload(crm, b"%PDF" + os.urandom(100_001)), 413)
    assert "maximum upload size is 100000" in body["message"]
    assert crm.admin("GET", "/files") == before
    assert upload(crm, b"%PDF" + os.urandom(99_000)).status_code == 201


def test_files_api_needs_a_token(crm: Crm) -> None:  # noqa: F811
    resp = requests.get(f"{crm.url}{FILES}/1", timeout=10)
    assert resp.status_code == 401
    assert resp.json()["category"] == "INVALID_AUTHENTICATION"
    assert "files" in crm.fetch_token().json()["scopes"]


def test_unknown_file_is_404(crm: Crm, files_spec: Spec | None) -> None:  # noqa: F811
    conform(files_spec, FILES + "/{fileId}", crm.call("GET", f"{FILES}/999"), 404)


def test_injected_drop_mid_upload_leaves_nothing(crm: Crm) -> None:  # noqa: F811
    before = crm.admin("GET", "/files")
    crm.admin(
        "POST",
        "/faults",
        {"kind": "drop_mid_body", "path": "^/files/v3/files$", "size_bytes": 50_000, "count": 1},
    )
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        upload(crm, pdf("cut") + os.urandom(400_000))
    assert crm.admin("GET", "/files") == before


def test_client_gone_mid_upload_leaves_nothing(crm: Crm) -> None:  # noqa: F811
    """A raw client announces 1 MB, sends a tenth of it and closes the socket."""
    before = crm.admin("GET", "/files")
    token = crm.login()
    boundary = "simboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="options"\r\n\r\n{{"access": "PRIVATE"}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="folderPath"\r\n\r\n/cut\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    host, port = urlsplit(crm.url).hostname, urlsplit(crm.url).port
    assert host is not None
    assert port is not None
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {FILES} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + 1_000_000}\r\n\r\n"
            ).encode()
            + head
            + os.urandom(100_000)
        )
    assert crm.admin("GET", "/health")["status"] == "ok"
    assert crm.admin("GET", "/files") == before


def test_folders_by_id_and_path(crm: Crm, files_spec: Spec | None) -> None:  # noqa: F811
    made = conform(
        files_spec,
        "/files/v3/folders",
        crm.call("POST", "/files/v3/folders", {"name": "客户A", "parentPath": "/bridge/customers"}),
        201,
    )
    assert made["path"] == "/bridge/customers/客户A"
    by_id = conform(
        files_spec, "/files/v3/folders/{folderId}", crm.call("GET", f"/files/v3/folders/{made['id']}"), 200
    )
    assert by_id == made
    by_path = crm.call("GET", "/files/v3/folders/bridge/customers/客户A")
    assert conform(files_spec, "/files/v3/folders/{folderPath}", by_path, 200)["id"] == made["id"]
    twice = crm.call("POST", "/files/v3/folders", {"name": "客户A", "parentPath": "/bridge/customers"})
    assert twice.status_code == 409
    stored = upload(crm, pdf("in folder"), folderId=made["id"]).json()
    assert stored["parentFolderId"] == made["id"]
    assert stored["path"].startswith("/bridge/customers/客户A/")
    assert upload(crm, pdf("nowhere"), folderId="170999999999").status_code == 404


def test_note_attachment_ids_must_name_files(crm: Crm) -> None:  # noqa: F811
    a = upload(crm, pdf("note a")).json()["id"]
    b = upload(crm, pdf("note b")).json()["id"]
    note = {
        "properties": {"hs_timestamp": str(NOW_MS), "hs_note_body": "合同", "hs_attachment_ids": f"{a}; {b}"},
        "associations": [
            {
                "to": {"id": str(DEAL)},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}],
            }
        ],
    }
    made = crm.ok("POST", "/crm/v3/objects/notes", note, status=201)
    read = crm.ok("GET", f"/crm/v3/objects/notes/{made['id']}", params={"properties": "hs_attachment_ids"})
    assert read["properties"]["hs_attachment_ids"] == f"{a};{b}"
    links = crm.ok("GET", f"/crm/v4/objects/deals/{DEAL}/associations/notes")["results"]
    assert made["id"] in {str(x["toObjectId"]) for x in links}
    note["properties"]["hs_attachment_ids"] = f"{a};999"
    bad = crm.call("POST", "/crm/v3/objects/notes", note)
    assert bad.status_code == 400
    assert "hs_attachment_ids" in bad.json()["message"]
    assert "999" in bad.json()["message"]


def test_admin_attach_puts_a_private_file_on_a_deal(crm: Crm) -> None:  # noqa: F811
    content = pdf("attach")
    done = crm.admin(
        "POST",
        "/act/attach",
        {
            "object_type": "deals",
            "id": DEAL,
            "file_name": "签约合同.pdf",
            "content_b64": base64.b64encode(content).decode(),
        },
        status=201,
    )
    assert done["file"]["access"] == "PRIVATE"
    read = crm.ok(
        "GET", f"/crm/v3/objects/notes/{done['note_id']}", params={"properties": "hs_attachment_ids"}
    )
    assert read["properties"]["hs_attachment_ids"] == done["file"]["id"]
    assert crm.call("GET", f"{FILES}/{done['file']['id']}/download").content == content


def test_seeded_contracts_on_deals_are_deterministic(crm: Crm) -> None:  # noqa: F811
    first = crm.admin("POST", "/act/attach_contracts", {"count": 2, "seed": 7}, status=201)["attached"]
    assert len(first) == 2
    for item in first:
        note = crm.ok(
            "GET", f"/crm/v3/objects/notes/{item['note_id']}", params={"properties": "hs_attachment_ids"}
        )
        assert note["properties"]["hs_attachment_ids"] == item["file_id"]
        stored = crm.ok("GET", f"{FILES}/{item['file_id']}")
        assert stored["access"] == "PRIVATE"
        assert stored["path"].startswith("/contracts/合同-")
        assert crm.call("GET", f"{FILES}/{item['file_id']}/download").content.startswith(b"%PDF-")
    again = crm.admin("POST", "/act/attach_contracts", {"count": 2, "seed": 7}, status=201)["attached"]
    assert [(a["deal_id"], a["file_id"], a["file_md5"]) for a in again] == [
        (a["deal_id"], a["file_id"], a["file_md5"]) for a in first
    ]  # same bytes in the same folder: the file is reused, a second note links it
