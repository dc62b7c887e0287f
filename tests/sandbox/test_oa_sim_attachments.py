"""Feishu approval attachments in the OA simulator, over real HTTP: the upload endpoint and its limits per
type, file codes in ``attachmentV2`` / ``image`` widgets, expiring download URLs refreshed by reading the
instance again, and uploads cut off half way that leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest
import requests
from tests.sandbox.test_oa_sim_conformance import conforms

from sandbox.common.world import APPROVAL_CODES
from sandbox.oa.testing import OaClient, sample_widgets

UPLOAD = "/approval/openapi/v2/file/upload"
INSTANCES = "/open-apis/approval/v4/instances"
EXPENSE = APPROVAL_CODES["expense_claim"]
MB = 1024 * 1024


def upload(
    oa: OaClient, content: bytes, kind: str = "attachment", name: str = "发票.pdf"
) -> requests.Response:
    return oa.session.post(
        oa.base_url + UPLOAD,
        headers={"Authorization": f"Bearer {oa.token}"},
        data={"name": name, "type": kind},
        files={"content": (name, content)},
        timeout=60,
    )


def uploaded(
    oa: OaClient, content: bytes, kind: str = "attachment", name: str = "发票.pdf"
) -> dict[str, Any]:
    resp = upload(oa, content, kind, name)
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["code"] == 0, body
    assert body["msg"] == "success"
    assert set(body["data"]) == {"code", "url"}
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture
def applicant(oa: OaClient) -> str:
    return str(next(u for u in oa.admin("GET", "/users")["users"] if u["role"] == "employee")["user_id"])


def create_with_files(oa: OaClient, user_id: str, **files: list[str]) -> str:
    form = json.dumps(sample_widgets("expense_claim", **files), ensure_ascii=False)
    return str(
        oa.call("POST", INSTANCES, json={"approval_code": EXPENSE, "user_id": user_id, "form": form})[
            "instance_code"
        ]
    )


def file_widgets(oa: OaClient, code: str) -> dict[str, dict[str, Any]]:
    body = conforms(
        "GET", "/open-apis/approval/v4/instances/{instance_id}", oa.request("GET", f"{INSTANCES}/{code}")
    )
    return {w["id"]: w for w in json.loads(body["data"]["form"]) if w["type"] in ("attachmentV2", "image")}


def test_upload_answers_a_code_and_a_working_url(oa: OaClient) -> None:
    content = b"%PDF-1.7 invoice" + os.urandom(4096)
    data = uploaded(oa, content)
    assert requests.get(data["url"], timeout=10).content == content


def test_upload_needs_a_token(oa: OaClient) -> None:
    resp = oa.session.post(
        oa.base_url + UPLOAD,
        data={"name": "a.pdf", "type": "attachment"},
        files={"content": ("a.pdf", b"x")},
        timeout=10,
    )
    assert (resp.status_code, resp.json()["code"]) == (400, 99991661)


@pytest.mark.parametrize(("kind", "limit"), [("image", 10 * MB), ("attachment", 50 * MB)])
def test_size_limit_per_type(oa: OaClient, kind: str, limit: int) -> None:
    before = oa.admin("GET", "/files")
    too_big = upload(oa, b"\0" * (limit + 1), kind, "big.png" if kind == "image" else "big.pdf")
    assert (too_big.status_code, too_big.json()["code"]) == (400, 1390001)
    assert f"{limit // MB} MB" in too_big.json()["msg"]
    assert oa.admin("GET", "/files") == before
    assert upload(oa, b"\0" * limit, kind).json()["code"] == 0


def test_unknown_type_is_refused(oa: OaClient) -> None:
    resp = upload(oa, b"x", "video")
    assert (resp.status_code, resp.json()["code"]) == (400, 1390001)


def test_instance_carries_codes_as_expiring_urls_refreshed_by_reading_again(
    oa: OaClient, applicant: str
) -> None:
    invoice, scan = b"%PDF invoice" + os.urandom(512), b"\x89PNG scan" + os.urandom(512)
    a = uploaded(oa, invoice, name="发票.pdf")["code"]
    i = uploaded(oa, scan, "image", "签收单.png")["code"]
    code = create_with_files(oa, applicant, attachments=[a], images=[i])
    widgets = file_widgets(oa, code)
    first = widgets["attachments"]["value"][0]
    assert widgets["attachments"]["ext"] == "发票.pdf"
    assert requests.get(first, timeout=10).content == invoice
    assert requests.get(widgets["images"]["value"][0], timeout=10).content == scan
    oa.admin("POST", "/clock", {"advance_ms": 12 * 3600 * 1000 + 1000})
    expired = requests.get(first, timeout=10)
    assert expired.status_code == 403
    assert b"expired" in expired.content
    oa.forget_token()  # the tenant token (2 h) expired with the clock too
    fresh = file_widgets(oa, code)["attachments"]["value"][0]
    assert fresh != first
    assert requests.get(fresh, timeout=10).content == invoice


def test_url_lifetime_is_configurable_and_signature_checked(oa: OaClient, applicant: str) -> None:
    oa.admin("POST", "/config", {"file_url_ttl_s": 5})
    a = uploaded(oa, b"%PDF short" + os.urandom(64))["code"]
    url = file_widgets(oa, create_with_files(oa, applicant, attachments=[a]))["attachments"]["value"][0]
    assert requests.get(url.replace("x-orig-sign=", "x-orig-sign=A"), timeout=10).status_code == 403
    oa.admin("POST", "/clock", {"advance_ms": 6000})
    assert requests.get(url, timeout=10).status_code == 403


@pytest.mark.parametrize("value", [["NO-SUCH-CODE"], [], "CODE", "image"])
def test_bad_file_widget_values_are_refused(oa: OaClient, applicant: str, value: Any) -> None:
    image_code = uploaded(oa, b"\x89PNG" + os.urandom(64), "image", "a.png")["code"]
    widget_value = [image_code] if value == "image" else value  # an image code in the attachment widget
    form = json.dumps(sample_widgets("expense_claim", attachments=widget_value), ensure_ascii=False)
    resp = oa.request("POST", INSTANCES, json={"approval_code": EXPENSE, "user_id": applicant, "form": form})
    assert (resp.status_code, resp.json()["code"]) == (400, 1390001)
    assert "attachments" in resp.json()["msg"]


def test_definition_lists_the_file_widgets(oa: OaClient) -> None:
    form = json.loads(oa.call("GET", f"/open-apis/approval/v4/approvals/{EXPENSE}")["form"])
    assert {(w["id"], w["type"]) for w in form} >= {("attachments", "attachmentV2"), ("images", "image")}


def test_injected_drop_mid_upload_leaves_nothing(oa: OaClient) -> None:
    before = oa.admin("GET", "/files")
    oa.admin(
        "POST",
        "/faults",
        {
            "kind": "drop_mid_body",
            "path": "^/approval/openapi/v2/file/upload$",
            "size_bytes": 20_000,
            "count": 1,
        },
    )
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        upload(oa, os.urandom(300_000))
    assert oa.admin("GET", "/files") == before


def test_admin_attach_adds_a_file_to_an_instance(oa: OaClient, applicant: str) -> None:
    code = create_with_files(oa, applicant)
    content = b"%PDF reimbursed" + os.urandom(128)
    oa.admin(
        "POST",
        "/act/attach",
        {
            "instance_code": code,
            "file_name": "报销发票.pdf",
            "content_b64": base64.b64encode(content).decode(),
        },
    )
    widget = file_widgets(oa, code)["attachments"]
    assert widget["ext"] == "报销发票.pdf"
    assert requests.get(widget["value"][0], timeout=10).content == content


def test_seeded_invoices_on_approved_expense_claims(oa: OaClient, applicant: str) -> None:
    for _ in range(2):
        code = oa.admin(
            "POST",
            "/act/submit",
            {"approval": "expense_claim", "user_id": applicant, "form": sample_widgets("expense_claim")},
        )["instance_code"]
        oa.admin("POST", "/act/approve", {"instance_code": code})
    attached = oa.admin("POST", "/act/attach_invoices", {"count": 2, "seed": 7})["attached"]
    assert len(attached) == 2
    for item in attached:
        widget = file_widgets(oa, item["instance_code"])["attachments"]
        content = requests.get(widget["value"][0], timeout=10).content
        assert content.startswith(b"%PDF-")
        assert hashlib.sha256(content).hexdigest() == item["sha256"]
        assert widget["ext"].startswith("发票-")
