"""客户文件 (/bridge/documents) over a hub the real transfers filled: rows, links, downloads, 403s and audit, per role.

The world is the two-way sync world of ``tests/sync`` with attachments on: a person attaches a signed
contract to a deal in the CRM simulator and the CRM → OA sync files the 立项申请 with it; people attach an
invoice to an approved 费用报销 and a file to an approved 差旅申请 in the OA simulator and the OA → CRM sync
brings them to the customer's note. The page is then read as 普通员工, 销售主管 and 财务 (settings
``ui.user_roles``), and files are downloaded through the page's own route, which streams them from the
simulators through the hooks (the Connections of the world).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.pg_support import scratch_database
from tests.sync.sync_c2o_world import c2o_sims  # noqa: F401  (the simulators)
from tests.sync.sync_o2c_world import O2C, make_o2c, o2c  # noqa: F401  (the two-way world)
from tests.ui.conftest import FakeAuth, mounted

from bridge.hub import documents
from bridge.hub.schema import audit_log
from bridge.ui.app import UiConfig
from sandbox.common.documents import demo_pdf

CONTRACT = demo_pdf("合同 测试 文件页", 11)
INVOICE = demo_pdf("发票 测试 文件页", 12)
TRIP_FILE = demo_pdf("行程单 测试 文件页", 13)
SHA = {
    name: hashlib.sha256(body).hexdigest()
    for name, body in (("contract", CONTRACT), ("invoice", INVOICE), ("trip", TRIP_FILE))
}


@dataclass
class FiledWorld:
    """A customer whose contract, invoice and trip file went through both syncs."""

    o2c: O2C
    company: str
    name: str
    uscc: str
    deal: str
    project: str
    expense: str
    trip: str


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def file_documents(o2c: O2C) -> FiledWorld:  # noqa: F811
    """A contract filed CRM → OA with its 立项申请, an invoice and a trip file brought OA → CRM (real syncs)."""
    company, _ = o2c.c2o.customer()
    deal = o2c.c2o.create_deal(company, stage="contractsent")
    o2c.sims.crm.admin(
        "POST",
        "/_sim/act/attach",
        {
            "object_type": "deals",
            "id": int(deal),
            "file_name": "合同-文件页测试.pdf",
            "content_b64": _b64(CONTRACT),
            "folder_path": "/contracts",
        },
    )
    o2c.c2o_sync()  # the 立项申请 is filed with the contract
    project = o2c.project_of(deal)
    o2c.act("approve", project)
    o2c.sync()
    project_no = o2c.deal(deal)["oa_project_no"]
    expense = o2c.expense(company, amount=300, project_no=project_no)
    trip = o2c.trip(company, project_no=project_no)
    o2c.oa_act(
        "attach", {"instance_code": expense, "file_name": "发票-文件页.pdf", "content_b64": _b64(INVOICE)}
    )
    o2c.oa_act("attach", {"instance_code": trip, "file_name": "行程单.pdf", "content_b64": _b64(TRIP_FILE)})
    o2c.act("approve", expense)
    o2c.act("approve", trip)
    o2c.discover()
    counts = o2c.load(oa=o2c.c2o.oa).counts  # the load with the OA hook: the attachments step runs
    assert counts.get("attachments_uploaded") == 2, counts
    record = o2c.c2o.crm_object("companies", company)
    return FiledWorld(o2c, company, record["name"], record["uscc"], deal, project, expense, trip)


@pytest.fixture
def filed(o2c: O2C, monkeypatch: pytest.MonkeyPatch) -> Iterator[FiledWorld]:  # noqa: F811
    monkeypatch.setenv("BRIDGE__ATTACHMENTS__ENABLED", "true")
    yield file_documents(o2c)
    for sim in (o2c.sims.crm, o2c.sims.oa):
        sim.admin("DELETE", "/_sim/faults")


@pytest.fixture
def page(filed: FiledWorld, tmp_path: Any) -> Iterator[tuple[TestClient, FakeAuth]]:
    auth = FakeAuth()
    data = tmp_path / "ui-data"
    data.mkdir()
    config = UiConfig(
        authenticator=auth, csrf_secret=b"documents-test", hub_url=str(filed.o2c.hub.url), data_dir=data
    )
    with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as client:
        yield client, auth


def _as(page: tuple[TestClient, FakeAuth], role: str) -> TestClient:
    client, auth = page
    auth.login(role, may_release=False)
    return client


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr class="document-row"[^>]*>(.*?)</tr>', html, flags=re.S)


def _links(html: str) -> list[str]:
    return re.findall(r'class="document-link" href="([^"]+)"', html)


def _audit(w: FiledWorld, operation: str) -> list[dict[str, Any]]:
    with w.o2c.hub.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.operation == operation).order_by(audit_log.c.seq)
        )
        return [dict(r._mapping) for r in rows]


def test_the_transfers_registered_three_classes_in_both_systems(filed: FiledWorld) -> None:
    """The world the page is read in: what the real transfers wrote (guards the tests below)."""
    listed = documents.documents_for_company(filed.o2c.hub, filed.company)
    seen = {(d.sha256, d.doc_class, d.system) for d in listed}
    assert {
        (SHA["contract"], "contract", "crm"),
        (SHA["contract"], "contract", "oa"),
        (SHA["invoice"], "invoice", "crm"),
        (SHA["invoice"], "invoice", "oa"),
        (SHA["trip"], "other", "crm"),
        (SHA["trip"], "other", "oa"),
    } <= seen


def test_each_role_sees_its_rows_and_links(page: tuple[TestClient, FakeAuth], filed: FiledWorld) -> None:
    by_role: dict[str, tuple[list[str], list[str]]] = {}
    for role in ("employee", "sales_manager", "finance"):
        html = _as(page, role).get("/bridge/documents", params={"q": filed.name}).text
        by_role[role] = (_rows(html), _links(html))
        assert (
            f"（{ {'employee': '普通员工', 'sales_manager': '销售主管', 'finance': '财务'}[role] }）" in html
        )
    employee_rows, employee_links = by_role["employee"]
    manager_rows, manager_links = by_role["sales_manager"]
    finance_rows, finance_links = by_role["finance"]

    # 普通员工: only the 其他 file (the trip's), in both systems, with its links; no contract, no invoice at all.
    assert {SHA["trip"]} == {re.search(r"/documents/file/([0-9a-f]{64})", u).group(1) for u in employee_links}
    assert len(employee_rows) == 3  # the trip file: OA 差旅申请, CRM customer and deal
    assert all("行程单.pdf" in r and "其他" in r for r in employee_rows)
    # 销售主管: contracts and other files open; invoices listed with a masked name and no link.
    manager_opened = {re.search(r"file/([0-9a-f]{64})", u).group(1) for u in manager_links}
    assert manager_opened == {SHA["contract"], SHA["trip"]}
    invoice_rows = [r for r in manager_rows if "发票" in r and "无权打开" in r]
    assert invoice_rows
    assert not any("发票-文件页.pdf" in r for r in manager_rows)
    assert all("document-link" not in r for r in invoice_rows)
    # 财务: everything, with links.
    finance_opened = {re.search(r"file/([0-9a-f]{64})", u).group(1) for u in finance_links}
    assert finance_opened == set(SHA.values())
    assert len(finance_rows) > len(manager_rows) - len(invoice_rows) > len(employee_rows)
    assert all("无权打开" not in r for r in finance_rows)


def test_rows_say_where_what_and_who(page: tuple[TestClient, FakeAuth], filed: FiledWorld) -> None:
    rows = _rows(_as(page, "finance").get("/bridge/documents", params={"q": filed.name}).text)
    contract = [r for r in rows if "合同-文件页测试.pdf" in r]
    assert {("CRM" in r, "OA" in r) for r in contract} == {(True, False), (False, True)}
    crm_row = next(r for r in contract if "CRM" in r)
    oa_row = next(r for r in contract if "OA" in r)
    assert "人员上传" in crm_row  # a person attached it in the CRM
    assert "数据桥同步" in oa_row  # the bridge put it into the OA
    assert "合同" in crm_row
    assert "PDF" in crm_row
    assert "KB" in crm_row
    assert "立项申请" in oa_row
    assert "商机" in crm_row
    invoice_crm = [r for r in rows if "发票-文件页.pdf" in r and "CRM" in r]
    assert invoice_crm
    assert all("数据桥同步" in r for r in invoice_crm)


def test_the_page_never_holds_a_vendor_url(page: tuple[TestClient, FakeAuth], filed: FiledWorld) -> None:
    for role in ("employee", "sales_manager", "finance"):
        html = _as(page, role).get("/bridge/documents", params={"q": filed.name}).text
        for marker in (
            "hubfs",
            "signed",
            "lark-approval-attachment",
            filed.o2c.sims.crm.url,
            filed.o2c.sims.oa.url,
        ):
            assert marker not in html, (role, marker)


def test_search_by_uscc_only_for_roles_that_see_it(
    page: tuple[TestClient, FakeAuth], filed: FiledWorld
) -> None:
    found = _as(page, "finance").get("/bridge/documents", params={"q": filed.uscc}).text
    assert filed.name in found
    assert _links(found)
    refused = _as(page, "employee").get("/bridge/documents", params={"q": filed.uscc}).text
    assert 'id="uscc-refused"' in refused
    assert filed.name not in refused
    assert not _rows(refused)
    masked = _as(page, "sales_manager").get("/bridge/documents", params={"q": filed.uscc}).text
    shown = re.findall(
        r"<code>([^<]*)</code>", masked
    )  # the USCC cells (the search box echoes what was typed)
    assert shown == [filed.uscc[:4] + "**********" + filed.uscc[-4:]], shown
    assert re.findall(r"<code>([^<]*)</code>", found) == [filed.uscc]


def test_an_allowed_download_streams_the_bytes_and_is_audited(
    page: tuple[TestClient, FakeAuth], filed: FiledWorld
) -> None:
    client = _as(page, "sales_manager")
    (link,) = {
        u
        for u in _links(client.get("/bridge/documents", params={"q": filed.name}).text)
        if SHA["contract"] in u
    }
    got = client.get(link.replace("&amp;", "&"))
    assert got.status_code == 200, got.text[:300]
    assert got.content == CONTRACT
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in got.headers["content-security-policy"]
    (entry,) = [e for e in _audit(filed, "document_download") if e["outcome"] == "ok"]
    assert entry["principal"] == "sales_manager"
    assert entry["dag_id"] == "bridge-ui"
    assert entry["record_ids"]["sha256"] == SHA["contract"]
    assert entry["record_ids"]["company_id"] == filed.company
    assert entry["detail"] == "role=sales_manager"
    views = _audit(filed, "document_link_view")
    assert {v["record_ids"]["sha256"] for v in views if v["principal"] == "sales_manager"} == {
        SHA["contract"],
        SHA["trip"],
    }, "every link shown is audited, and only those"


def test_a_refused_download_is_403_naming_who_may_and_audited(
    page: tuple[TestClient, FakeAuth], filed: FiledWorld
) -> None:
    url = f"/bridge/documents/file/{SHA['invoice']}?company={filed.company}"
    refused = _as(page, "sales_manager").get(url)
    assert refused.status_code == 403
    text = re.sub(r"<[^>]+>", " ", refused.text)
    assert "「发票」类文件只有以下角色可以打开：财务、管理层" in text
    assert "销售主管" in text
    assert b"%PDF" not in refused.content
    assert (
        _as(page, "employee")
        .get(f"/bridge/documents/file/{SHA['contract']}?company={filed.company}")
        .status_code
        == 403
    )
    denied = [e for e in _audit(filed, "document_download") if e["outcome"] == "denied"]
    assert [(e["principal"], e["record_ids"]["sha256"]) for e in denied] == [
        ("sales_manager", SHA["invoice"]),
        ("employee", SHA["contract"]),
    ]
    allowed = _as(page, "finance").get(url)
    assert allowed.status_code == 200
    assert allowed.content == INVOICE


def test_a_crm_outage_falls_back_to_the_oa_copy_and_both_down_is_a_502(
    page: tuple[TestClient, FakeAuth], filed: FiledWorld
) -> None:
    """The trip file is stored in both systems: with the CRM's downloads failing, the OA copy is streamed."""
    filed.o2c.sims.crm.admin(
        "POST",
        "/_sim/faults",
        {"kind": "error", "status": 503, "path": "^/(files/v3|hubfs)/", "method": "GET", "count": 50},
    )
    got = _as(page, "employee").get(f"/bridge/documents/file/{SHA['trip']}?company={filed.company}")
    assert got.status_code == 200, got.text[:300]
    assert got.content == TRIP_FILE
    (entry,) = [e for e in _audit(filed, "document_download") if e["outcome"] == "ok"]
    assert entry["system"] == "oa"
    # both systems failing: a Chinese 502, nothing of the file, the failure audited
    filed.o2c.sims.oa.admin(
        "POST",
        "/_sim/faults",
        {"kind": "error", "status": 503, "path": "^/lark-approval-attachment/", "method": "GET", "count": 50},
    )
    failed = _as(page, "employee").get(f"/bridge/documents/file/{SHA['trip']}?company={filed.company}")
    assert failed.status_code == 502
    assert "暂时无法从 CRM 或 OA 取得这个文件" in failed.text
    assert b"%PDF" not in failed.content
    assert "Error" not in failed.text  # no exception name on the page (the log has them)
    assert [e["outcome"] for e in _audit(filed, "document_download")] == ["ok", "failed"]


def test_wrong_addresses_are_told_in_chinese(page: tuple[TestClient, FakeAuth], filed: FiledWorld) -> None:
    client = _as(page, "finance")
    assert client.get("/bridge/documents/file/not-a-hash?company=1").status_code == 400
    assert client.get(f"/bridge/documents/file/{SHA['invoice']}").status_code == 400
    missing = client.get(f"/bridge/documents/file/{'0' * 64}?company={filed.company}")
    assert missing.status_code == 404
    assert "这个客户没有这个文件" in missing.text
    other = client.get(f"/bridge/documents/file/{SHA['invoice']}?company=999999")
    assert other.status_code == 404, "a file is reached only through a customer it belongs to"
    assert client.get("/bridge/documents", params={"company": "999999"}).status_code == 404
    assert client.get("/bridge/documents", params={"q": "x" * 101}).status_code == 400


@pytest.mark.pg
def test_search_and_download_on_postgres(
    c2o_sims: Any,  # noqa: F811
    pg_dsn: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hub in production: the customer search reads the snapshots' JSON, the rows and a download."""
    monkeypatch.setenv("BRIDGE__ATTACHMENTS__ENABLED", "true")
    with scratch_database(pg_dsn, "ui_documents") as url:
        w = file_documents(make_o2c(c2o_sims, url, monkeypatch))
        auth = FakeAuth()
        (tmp_path / "ui-data").mkdir()
        config = UiConfig(authenticator=auth, csrf_secret=b"pg", hub_url=url, data_dir=tmp_path / "ui-data")
        with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as client:
            auth.login("finance", may_release=False)
            part = w.name[2:8]  # a part of the name, with LIKE's own characters escaped
            by_name = client.get("/bridge/documents", params={"q": part}).text
            by_uscc = client.get("/bridge/documents", params={"q": w.uscc.lower()}).text
            assert client.get("/bridge/documents", params={"q": "100%_"}).status_code == 200
            got = client.get(f"/bridge/documents/file/{SHA['invoice']}", params={"company": w.company})
        w.o2c.c2o.crm.close()
        w.o2c.c2o.oa.close()
    assert w.name in by_name
    assert {m for m in re.findall(r"file/([0-9a-f]{64})", by_uscc)} == set(SHA.values())
    assert got.status_code == 200
    assert got.content == INVOICE
