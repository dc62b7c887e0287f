"""Files served from the data folder stay inside their folder: traversal, links and hub rows refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from bridge.ui import files


@pytest.fixture
def area(tmp_path: Path) -> Path:
    base = tmp_path / "data" / "data_docs"
    (base / "site").mkdir(parents=True)
    (base / "site" / "index.html").write_text("ok", encoding="utf-8")
    (tmp_path / "data" / "hub.sqlite").write_text("secret hub", encoding="utf-8")
    return base


@pytest.mark.parametrize(
    "rel",
    [
        "../hub.sqlite",
        "site/../../hub.sqlite",
        "/etc/passwd",
        "site/./../../x",
        "//etc/passwd",
        "..",
        "site\\..\\..\\hub.sqlite",
        "site/index.html\x00.png",
    ],
)
def test_safe_join_refuses_escapes(area: Path, rel: str) -> None:
    with pytest.raises(files.UnsafePath):
        files.safe_join(area, rel)


def test_safe_join_accepts_paths_inside(area: Path) -> None:
    assert files.safe_join(area, "site/index.html") == (area / "site" / "index.html").resolve()
    assert files.safe_join(area, "site/missing.html") == (area / "site" / "missing.html").resolve()


def test_symlink_out_of_the_folder_is_refused(area: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "data" / "hub.sqlite", area / "site" / "hub.html")
    os.symlink(tmp_path / "data", area / "up")
    with pytest.raises(files.UnsafePath):
        files.safe_join(area, "site/hub.html")
    with pytest.raises(files.UnsafePath):
        files.safe_join(area, "up/hub.sqlite")
    assert [f.name for f in files.files_in(area, area / "site")] == ["index.html"]


@given(
    st.lists(
        st.sampled_from(["..", ".", "site", "index.html", "", "a", "%2e%2e", "~"]), min_size=1, max_size=6
    )
)
def test_safe_join_never_leaves_the_folder(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    base = tmp_path_factory.getbasetemp() / "prop_area"
    base.mkdir(exist_ok=True)
    try:
        target = files.safe_join(base, "/".join(parts))
    except files.UnsafePath:
        return
    assert target == base.resolve() or target.is_relative_to(base.resolve())


def test_confined_only_accepts_stored_paths_inside_the_area(tmp_path: Path) -> None:
    data = tmp_path / "data"
    reports = data / "reports"
    (reports / "2026-11-26").mkdir(parents=True)
    inside = reports / "2026-11-26" / "r.html"
    inside.write_text("x")
    assert files.confined(reports, str(inside), data) == inside.resolve()
    assert files.confined(reports, "reports/2026-11-26/r.html", data) == inside.resolve()  # relative to data
    assert files.confined(reports, "2026-11-26/r.html", data) == inside.resolve()  # relative to the area
    assert files.confined(reports, "/etc/passwd", data) is None
    assert files.confined(reports, str(data / "hub.sqlite"), data) is None
    assert files.confined(reports, "../hub.sqlite", data) is None
    assert files.confined(reports, "", data) is None


@pytest.mark.parametrize(
    "path",
    [
        "/bridge/data-docs/%2e%2e/hub.sqlite",
        "/bridge/data-docs/..%2Fhub.sqlite",
        "/bridge/data-docs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/bridge/data-docs//etc/passwd",
        "/bridge/files/reports/%2e%2e/hub.sqlite",
        "/bridge/files/data_health/..%2f..%2fhub.sqlite",
        "/bridge/files/migration/%2e%2e%2fhub.sqlite",
    ],
)
def test_traversal_over_http_is_refused(client: TestClient, ui_data: Path, path: str, auth) -> None:
    auth.login("admin", may_release=False)  # 管理层 may open the report and migration folders
    (ui_data / "hub.sqlite").write_text("secret hub", encoding="utf-8")
    for name in ("data_docs", "reports", "data_health", "migration"):
        (ui_data / name).mkdir(exist_ok=True)
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert "secret hub" not in response.text
    assert "root:" not in response.text


def test_only_the_known_areas_are_served(client: TestClient, ui_data: Path) -> None:
    (ui_data / "sandbox").mkdir()
    (ui_data / "sandbox" / "crm.sqlite").write_text("sim data", encoding="utf-8")
    response = client.get("/bridge/files/sandbox/crm.sqlite")
    assert response.status_code == 404
    assert "sim data" not in response.text


def test_a_report_row_pointing_outside_the_reports_folder_is_not_served(
    client: TestClient, seed, auth, ui_data: Path
) -> None:
    auth.login("admin", may_release=False)
    (ui_data / "hub.sqlite.bak").write_text("secret hub", encoding="utf-8")
    seed.report(
        "2026-11-26", html=None, xlsx=None, html_path=str(ui_data / "hub.sqlite.bak"), xlsx_path="/etc/passwd"
    )
    for kind in ("html", "xlsx"):
        response = client.get(f"/bridge/reports/2026-11-26/{kind}")
        assert response.status_code == 404
        assert "secret hub" not in response.text
        assert "root:" not in response.text
    assert "网页版缺失" in client.get("/bridge/reports").text


def test_unknown_file_types_download_instead_of_rendering(client: TestClient, ui_data: Path) -> None:
    folder = ui_data / "data_health" / "2026-11-26"
    folder.mkdir(parents=True)
    (folder / "failing.bin").write_bytes(b"\x00\x01")
    (folder / "summary.md").write_text("# 汇总", encoding="utf-8")
    binary = client.get("/bridge/files/data_health/2026-11-26/failing.bin")
    assert binary.status_code == 200
    assert "attachment" in binary.headers["content-disposition"]
    text = client.get("/bridge/files/data_health/2026-11-26/summary.md")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "# 汇总"
    assert "script-src 'self'" in text.headers["content-security-policy"]
