"""The spreadsheet import of journey_sync (task ``imports``) over a hub the CRM → OA extract filled and the OA
simulator's directory: good CSV and XLSX rows staged, bad rows quarantined with their row number and a Chinese
message, unreadable files moved to failed/ with the reason, and none of it stopping the run."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
from tests.journey.journey_world import Journey

from bridge import permissions
from bridge.journey import imports

ANSWER_HEADER = ["问卷类型", "评分", "提交时间", "统一社会信用代码", "客户名称", "客户编号", "NPS 分组", "评价内容"]


def write_csv(path: Path, rows: list[list[Any]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def companies(journey: Journey) -> list[dict[str, Any]]:
    return sorted(journey.snapshots("company").values(), key=lambda c: c["crm_id"])


def oa_people(journey: Journey) -> list[dict[str, Any]]:
    users = journey.sims.oa.admin("GET", "/_sim/users")
    assert isinstance(users, dict)
    return sorted((u for u in users["users"] if u.get("email")), key=lambda u: str(u["user_id"]))


def imported(journey: Journey, entity: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in journey.snapshots(entity).items() if v["origin"] == "import"}


def test_a_good_csv_of_answers_is_staged_once_and_moved_to_done(journey: Journey) -> None:
    a, b, c = companies(journey)[:3]
    rows = [ANSWER_HEADER,
            ["NPS", "9", "2026-11-20", a["uscc"], "", "", "", "顾问很专业"],
            ["客户满意度", "4", "2026/11/21", "", b["name"], "", "", ""],
            ["CES", "3", "2026-11-22 10:30", "", "", c["crm_id"], "", "工单处理快"]]
    write_csv(journey.import_dir / "满意度-11月.csv", rows, encoding="gb18030")
    tally = journey.step(imports.import_folder, "imports")
    assert tally["counts"]["import_files_done"] == 1
    assert tally["counts"]["staged_feedback_submission"] == 3
    answers = sorted(imported(journey, "feedback_submission").values(), key=lambda r: r["submitted_at"])
    assert [(r["survey_type"], r["value"], r["company_id"]) for r in answers] == [
        ("NPS", 9, a["crm_id"]), ("CSAT", 4, b["crm_id"]), ("CES", 3, c["crm_id"])]
    assert answers[0]["nps_group"] == "promoter"
    assert answers[1]["nps_group"] is None
    assert answers[0]["submitted_at"] == "2026-11-19T16:00:00.000+00:00"  # a bare date is Shanghai midnight
    assert (journey.import_dir / "done" / "满意度-11月.csv").exists()
    assert not (journey.import_dir / "满意度-11月.csv").exists()
    assert journey.quarantine() == []
    [entry] = journey.audit("import")
    assert (entry["outcome"], entry["entity"]) == ("read", "feedback_submission")
    assert entry["detail"] == "3 行，3 行暂存，0 行隔离"

    write_csv(journey.import_dir / "满意度-11月.csv", rows, encoding="gb18030")  # the same file again
    again = journey.step(imports.import_folder, "imports")
    assert again["counts"].get("staged", 0) == 0
    assert again["counts"]["unchanged"] == 3
    assert len(list((journey.import_dir / "done").glob("满意度-11月*.csv"))) == 2


def test_bad_rows_are_quarantined_with_their_row_number_and_the_good_ones_staged(journey: Journey) -> None:
    a = companies(journey)[0]
    rows = [ANSWER_HEADER,
            ["NPS", "8", "2026-11-20", "", "不存在的客户有限公司", "", "", ""],
            ["CSAT", "9", "2026-11-20", a["uscc"], "", "", "", ""],
            ["NPS", "10", "昨天", a["uscc"], "", "", "", ""],
            ["PULSE", "3", "2026-11-20", a["uscc"], "", "", "", ""],
            ["NPS", "3", "2026-11-20", a["uscc"], "", "", "推荐者", ""],
            ["CES", "2", "2026-11-23", a["uscc"], "", "", "", "好"]]
    write_csv(journey.import_dir / "回访.csv", rows)
    tally = journey.step(imports.import_folder, "imports")
    assert tally["counts"]["staged"] == 1
    assert tally["counts"]["quarantined"] == 5
    entries = {e.message.split("：", 1)[0]: e for e in journey.quarantine("feedback_submission")}
    assert set(entries) == {"第 2 行", "第 3 行", "第 4 行", "第 5 行", "第 6 行"}
    assert entries["第 2 行"].reason_code == "missing_customer_link"
    assert "不存在的客户有限公司" in entries["第 2 行"].message
    assert entries["第 2 行"].source_id.startswith("imp-")
    assert (entries["第 3 行"].reason_code, entries["第 3 行"].field) == ("invalid_format", "value")
    assert (entries["第 4 行"].reason_code, entries["第 4 行"].field) == ("invalid_format", "submitted_at")
    assert (entries["第 5 行"].reason_code, entries["第 5 行"].field) == ("unmapped_value", "survey_type")
    assert "NPS 分组与评分 3 不符（应为贬损者）" in entries["第 6 行"].message
    assert all(e.department for e in entries.values())
    [good] = imported(journey, "feedback_submission").values()
    assert (good["survey_type"], good["value"], good["comment"]) == ("CES", 2, "好")
    assert (journey.import_dir / "done" / "回访.csv").exists()


def test_xlsx_ratings_resolve_people_through_the_oa_and_bad_rows_are_quarantined(journey: Journey) -> None:
    first, second = oa_people(journey)[:2]
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["被评估人", "员工邮箱", "评估周期", "周期开始日期", "周期结束日期", "绩效等级", "绩效分数"])
    sheet.append([first["user_id"], None, "2026年下半年", datetime(2026, 7, 1), datetime(2026, 12, 31), "A", 88])
    sheet.append([None, second["email"], "2026年下半年", datetime(2026, 7, 1), datetime(2026, 12, 31), "良好", 76.0])
    sheet.append(["u_nobody", None, "2026年下半年", datetime(2026, 7, 1), datetime(2026, 12, 31), "B", 70])
    sheet.append([first["user_id"], None, "2025年下半年", datetime(2025, 7, 1), datetime(2025, 12, 31), "E", 50])
    book.save(journey.import_dir / "绩效.xlsx")
    tally = journey.step(imports.import_folder, "imports")
    assert tally["counts"]["staged_performance_review"] == 2
    assert tally["counts"]["quarantined"] == 2
    reviews = {r["person_id"]: r for r in imported(journey, "performance_review").values()}
    assert set(reviews) == {first["user_id"], second["user_id"]}
    mine = reviews[first["user_id"]]
    assert (mine["rating"], mine["score"], mine["stage"], mine["period_end"]) == ("A", 88, "imported", "2026-12-31")
    assert mine["submitted_at"] == "2026-12-30T16:00:00.000+00:00"  # defaults to the period's end
    assert reviews[second["user_id"]]["rating"] == "B"
    entries = {e.reason_code: e for e in journey.quarantine("performance_review")}
    assert set(entries) == {"owner_not_in_oa", "unmapped_value"}
    assert entries["owner_not_in_oa"].message.startswith("第 4 行：员工「u_nobody」在 OA 中找不到")
    assert entries["unmapped_value"].message.startswith("第 5 行：")
    shown = permissions.load(dictionary=journey.d).mask_all("performance_review", entries["owner_not_in_oa"].payload or {})
    assert (shown["rating"], shown["score"], shown["period_name"]) == ("***", "***", "2026年下半年")
    calls = tally["api_calls"]["oa"]  # one directory look-up by id, one by e-mail (and the token)
    assert calls["GET /open-apis/contact/v3/users/batch"] == calls["POST /open-apis/contact/v3/users/batch_get_id"] == 1


def test_unreadable_files_go_to_failed_with_the_reason_and_the_run_goes_on(journey: Journey) -> None:
    a = companies(journey)[0]
    folder = journey.import_dir
    (folder / "说明.txt").write_text("not a spreadsheet", encoding="utf-8")
    write_csv(folder / "缺列.csv", [["问卷类型", "客户名称"], ["CSAT", a["name"]]])
    (folder / "坏的.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "超长字段.csv").write_bytes("问卷类型,评分\nNPS,\"".encode() + b"9" * 200_000 + b"\"\n")  # over csv's field limit
    write_csv(folder / "好的.csv", [ANSWER_HEADER, ["CSAT", "5", "2026-11-20", a["uscc"], "", "", "", ""]])
    tally = journey.step(imports.import_folder, "imports")
    assert tally["counts"]["import_files_failed"] == 4
    assert tally["counts"]["import_files_done"] == 1
    assert tally["counts"]["staged"] == 1
    reasons = {p.name: p.read_text(encoding="utf-8") for p in (folder / "failed").glob("*.error.txt")}
    assert set(reasons) == {"说明.txt.error.txt", "缺列.csv.error.txt", "坏的.xlsx.error.txt", "超长字段.csv.error.txt"}
    assert "CSV 文件无法解析" in reasons["超长字段.csv.error.txt"]
    assert "只接受 .csv 和 .xlsx" in reasons["说明.txt.error.txt"]
    assert "缺少必需的列：评分；提交时间" in reasons["缺列.csv.error.txt"]
    assert "无法打开 XLSX 文件" in reasons["坏的.xlsx.error.txt"]
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == []
    refused = [e for e in journey.audit("import") if e["outcome"] == "refused"]
    assert len(refused) == 4


def test_a_file_still_being_copied_waits_for_the_next_run(journey: Journey) -> None:
    a = companies(journey)[0]
    path = write_csv(journey.import_dir / "刚复制.csv", [ANSWER_HEADER, ["CSAT", "5", "2026-11-20", a["uscc"], "", "", "", ""]])
    journey.cfg = journey.cfg.model_copy(update={"import_quiet_seconds": 3600})
    waiting = journey.step(imports.import_folder, "imports")
    assert waiting["counts"] == {"import_files_waiting": 1}
    assert path.exists()
    journey.cfg = journey.cfg.model_copy(update={"import_quiet_seconds": 0})
    read = journey.step(imports.import_folder, "imports")
    assert read["counts"]["import_files_done"] == 1
    assert not path.exists()

