"""The upload page of the journey import (/bridge/journey/import): a permitted role's good file lands in the
folder the journey_sync import reads (audited), a file without the required columns or of another kind is
refused at once with the reason, other roles and forged forms are refused, and the folder's files are listed."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from bridge.hub.schema import audit_log
from bridge.journey import imports

SAME_SITE = {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}
GOOD = "问卷类型,评分,提交时间,客户名称\nNPS,9,2026-11-20,北京某某科技有限公司\n".encode("utf-8-sig")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _upload(client: TestClient, name: str, data: bytes, token: str) -> tuple[int, str]:
    response = client.post("/bridge/journey/import", data={"csrf_token": token},
                           files={"file": (name, data, "text/csv")}, headers=SAME_SITE)
    return response.status_code, response.text


def test_hr_uploads_a_file_into_the_folder_the_import_reads(client: TestClient, auth, ui_data: Path,
                                                            hub_url: str) -> None:
    auth.login("hr", may_release=False)
    page = client.get("/bridge/journey/import")
    assert page.status_code == 200
    assert 'id="upload-form"' in page.text
    status, html = _upload(client, "11月 回访/../答卷.csv", GOOD, _csrf(page.text))
    assert status == 200
    assert "已接收「" in html
    assert "（1 行）" in html
    [saved] = list(imports.pending_files(ui_data / "journey_import"))
    assert saved.name.endswith("-答卷.csv")
    assert saved.read_bytes() == GOOD
    assert saved.name in html  # listed under 等待导入
    engine = create_engine(hub_url)
    try:
        with engine.connect() as conn:
            [entry] = conn.execute(select(audit_log).where(audit_log.c.operation == "upload")).mappings().all()
    finally:
        engine.dispose()
    assert (entry["principal"], entry["entity"], entry["outcome"]) == ("hr", "feedback_submission", "accepted")


def test_a_file_without_the_required_columns_or_of_another_kind_is_refused_at_once(
    client: TestClient, auth, ui_data: Path
) -> None:
    auth.login("management", may_release=False)
    token = _csrf(client.get("/bridge/journey/import").text)
    status, html = _upload(client, "绩效.csv", "被评估人,绩效等级\nu1,A\n".encode(), token)
    assert status == 400
    assert "缺少必需的列：评估周期；周期开始日期；周期结束日期" in html
    status, html = _upload(client, "notes.txt", b"hello", token)
    assert status == 400
    assert "只接受 .csv 和 .xlsx 文件" in html
    assert list(imports.pending_files(ui_data / "journey_import")) == []


def test_other_roles_and_forged_forms_cannot_upload(client: TestClient, auth, ui_data: Path) -> None:
    auth.login("employee", may_release=False)
    page = client.get("/bridge/journey/import")
    assert page.status_code == 200
    assert 'id="upload-form"' not in page.text
    status, html = _upload(client, "答卷.csv", GOOD, "0" * 64)
    assert status == 403
    assert "不能上传导入文件" in html
    auth.login("hr", may_release=False)
    status, html = _upload(client, "答卷.csv", GOOD, "0" * 64)
    assert status == 403
    assert "CSRF 校验未通过" in html
    response = client.post("/bridge/journey/import", data={"csrf_token": _csrf(client.get("/bridge/journey/import").text)},
                           files={"file": ("答卷.csv", GOOD, "text/csv")},
                           headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert list(imports.pending_files(ui_data / "journey_import")) == []
