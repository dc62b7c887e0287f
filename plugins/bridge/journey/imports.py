"""Spreadsheet import of satisfaction answers and performance ratings (docs/journey.md, *Import*).

Files (``.csv`` UTF-8 or GB18030, or ``.xlsx``, first sheet) dropped in ``journey.import_dir`` are read
by the ``imports`` task of ``journey_sync``, oldest first. The header row names the columns by the
dictionary's Chinese labels (``评分``, ``问卷类型`` …) or field names (``value``, ``survey_type`` …); which
kind a file holds is told by its columns (``绩效等级`` → performance ratings, ``问卷类型`` → survey answers).
Each row is mapped and checked like a vendor record (:func:`bridge.journey.stage.stage_batch`): enum cells
take the value or its label (``推荐者``, ``优秀``), the customer is resolved in the hub (CRM id, USCC or
exact name), the person through the OA (user id, or e-mail); a bad row is quarantined with its row number
and a Chinese message, the good rows are staged. A file that cannot be read at all (not CSV/XLSX, too
large, no known columns) is moved to ``failed/`` with ``<name>.error.txt`` saying why; a read file
(whatever its rows) to ``done/``. Nothing in a file stops the run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge import settings
from bridge.dictionary import Problem
from bridge.hub import store
from bridge.journey import ORIGIN_IMPORT, SYSTEM_OF
from bridge.journey.stage import Candidate, JourneyRun, stage_batch
from bridge.sync.frame import write_audit

log = logging.getLogger("bridge.journey")

SUFFIXES = (".csv", ".xlsx")
BATCH = 500  # rows per hub transaction
FEEDBACK, REVIEW = "feedback_submission", "performance_review"
# Columns beyond the entity's fields: how a row names its customer or its person.
CUSTOMER_COLUMNS = {"by_crm_id": ("客户编号", "CRM客户编号", "所属客户", "company_id"),
                    "by_uscc": ("统一社会信用代码", "uscc"), "by_name": ("客户名称", "company_name")}
PERSON_COLUMNS = {"person_id": ("被评估人", "员工编号", "person_id"), "email": ("员工邮箱", "邮箱", "email")}


class ImportRefused(ValueError):
    """A whole file cannot be imported; the message (Chinese) says why and what to do."""


def import_dir(run: JourneyRun) -> Path:
    """``journey.import_dir``, or ``<data dir>/journey_import``."""
    configured = run.cfg.import_dir
    return Path(configured) if configured else settings.data_dir() / "journey_import"


# ---------------------------------------------------------------- reading a file
def _cell(value: Any) -> Any:
    """An XLSX cell as the dictionary's cleaners read it: whole floats as ints, text stripped, "" as None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _csv_rows(data: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        try:
            return [[_cell(c) for c in row] for row in csv.reader(io.StringIO(text))]
        except csv.Error as exc:  # a NUL byte, a field over the size limit: not a text table
            raise ImportRefused(f"CSV 文件无法解析（{exc}）：请用 Excel 或 WPS 重新另存为 CSV 后重试。") from exc
    raise ImportRefused("文件编码无法识别：请另存为 UTF-8 或 GB18030 编码的 CSV，或 XLSX。")


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or fake file
        raise ImportRefused(f"无法打开 XLSX 文件（{type(exc).__name__}）：请用 Excel 或 WPS 另存为 .xlsx 后重试。") from exc
    try:
        sheet = book.worksheets[0]
        return [[_cell(c) for c in row] for row in sheet.iter_rows(values_only=True)]
    except Exception as exc:  # a damaged sheet part fails only when read
        raise ImportRefused(f"XLSX 文件内容损坏（{type(exc).__name__}）：请用 Excel 或 WPS 另存为 .xlsx 后重试。") from exc
    finally:
        book.close()


@dataclass(frozen=True)
class Sheet:
    """A file's rows by column name (header row first), with their row numbers as staff see them."""

    header: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, Any]], ...]


def read_sheet(path: Path, max_bytes: int, max_rows: int) -> Sheet:
    """The rows of a CSV or XLSX file; ImportRefused with the reason when it cannot be read."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportRefused(f"文件 {size} 字节，超过上限 {max_bytes} 字节（journey.max_import_bytes）：请拆分后重试。")
    data = path.read_bytes()
    raw = _csv_rows(data) if path.suffix.lower() == ".csv" else _xlsx_rows(data)
    numbered = [(n, row) for n, row in enumerate(raw, start=1) if any(c is not None for c in row)]
    if not numbered:
        raise ImportRefused("文件是空的：第一行应为表头，其后每行一条记录。")
    head_no, head = numbered[0]
    header = tuple(str(c).strip() if c is not None else "" for c in head)
    body = numbered[1:]
    if len(body) > max_rows:
        raise ImportRefused(f"文件有 {len(body)} 行数据，超过上限 {max_rows} 行（journey.max_import_rows）：请拆分后重试。")
    rows = tuple((n, {h: row[i] if i < len(row) else None for i, h in enumerate(header) if h}) for n, row in body)
    log.info("journey import %s: header on row %d, %d data rows", path.name, head_no, len(rows))
    return Sheet(header, rows)


# ---------------------------------------------------------------- columns
def _aliases(run: JourneyRun, entity: str) -> dict[str, str]:
    """Header text → field name: the dictionary's label and name of every field of the entity."""
    out: dict[str, str] = {}
    for f in run.d.entity(entity).fields.values():
        out[f.label] = f.name
        out[f.name] = f.name
    return out


def kind_of(sheet: Sheet) -> str:
    """Which entity the file holds, by its columns."""
    columns = set(sheet.header)
    if columns & {"绩效等级", "rating"}:
        return REVIEW
    if columns & {"问卷类型", "survey_type"}:
        return FEEDBACK
    raise ImportRefused(
        "无法判断文件内容：满意度答卷须有「问卷类型」列，绩效结果须有「绩效等级」列（列名见 docs/journey.md）。"
    )


def _named(run: JourneyRun, entity: str, extra: Mapping[str, Sequence[str]], row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's cells by field name (and by the extra columns' keys)."""
    aliases = _aliases(run, entity)
    for key, names in extra.items():
        aliases.update(dict.fromkeys(names, key))
    return {aliases[h]: v for h, v in row.items() if h in aliases and v is not None}


def _check_columns(sheet: Sheet, required: Mapping[str, Sequence[str]]) -> None:
    """Every group of ``required`` (what → accepted headers) has one of its headers in the file."""
    missing = [what for what, names in required.items() if not set(names) & set(sheet.header)]
    if missing:
        raise ImportRefused(f"缺少必需的列：{'；'.join(missing)}。请按 docs/journey.md 的格式补上表头后重试。")


# ---------------------------------------------------------------- resolving customers and people
def _problem(run: JourneyRun, entity: str, code: str, field: str, message: str) -> Problem:
    owner = run.d.entity(entity).fields[field].owner
    return Problem(code, entity, field, message, owner)


def _customers(run: JourneyRun, cells: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(column key, cell text) → CRM company id, for the customer cells of a file found in the hub."""
    wanted: dict[str, set[str]] = {key: set() for key in CUSTOMER_COLUMNS}
    for named in cells:
        for key in CUSTOMER_COLUMNS:
            if named.get(key) is not None:
                wanted[key].add(str(named[key]))
    found: dict[tuple[str, str], str] = {}
    with run.hub.connect() as conn:
        for sid in store.get_snapshots(conn, "crm", "company", sorted(wanted["by_crm_id"])):
            found[("by_crm_id", sid)] = sid
        for key, fname in (("by_uscc", "uscc"), ("by_name", "name")):
            by_value = store.snapshots_by_field(conn, "crm", "company", fname, sorted(wanted[key]))
            for value, snaps in by_value.items():
                live = [s for s in snaps if not s.archived]
                if len(live) == 1:  # an ambiguous name resolves nothing
                    found[(key, value)] = live[0].source_id
    return found


def _customer_of(named: Mapping[str, Any], found: Mapping[tuple[str, str], str]) -> str | None:
    for key in CUSTOMER_COLUMNS:
        value = named.get(key)
        if value is not None and (key, str(value)) in found:
            return found[(key, str(value))]
    return None


def _people(run: JourneyRun, cells: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Person cell (OA user id or e-mail) → OA user id (None: not an OA user), asked of the OA."""
    ids = {str(c["person_id"]) for c in cells if c.get("person_id") is not None}
    emails = {str(c["email"]) for c in cells if c.get("person_id") is None and c.get("email") is not None}
    oa = run.hooks.oa
    known = oa.user_names(sorted(ids)) if ids else {}
    out: dict[str, str | None] = {i: (i if i in known else None) for i in ids}
    out.update(oa.user_ids(emails=sorted(emails)) if emails else {})
    return out


# ---------------------------------------------------------------- rows → candidates
def _stable_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:20]
    return f"{prefix}-{digest}"


@dataclass(frozen=True)
class FileFacts:
    """Where a row comes from: the file's name and its modification time (the rows' modification time)."""

    name: str
    modified_ms: int


# Per kind of file: what must be there → the headers that say it.
REQUIRED_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    FEEDBACK: {
        "问卷类型": ("问卷类型", "survey_type"), "评分": ("评分", "value"), "提交时间": ("提交时间", "submitted_at"),
        "客户（客户编号、统一社会信用代码或客户名称）": tuple(n for names in CUSTOMER_COLUMNS.values() for n in names),
    },
    REVIEW: {
        "员工（被评估人编号或员工邮箱）": tuple(n for names in PERSON_COLUMNS.values() for n in names),
        "评估周期": ("评估周期", "period_name"), "周期开始日期": ("周期开始日期", "period_start"),
        "周期结束日期": ("周期结束日期", "period_end"), "绩效等级": ("绩效等级", "rating"),
    },
}


def precheck(path: Path, max_bytes: int, max_rows: int) -> tuple[str, int]:
    """(entity, data rows) of a file that can be imported; ImportRefused with the reason otherwise (the upload
    page refuses such a file at once; its rows are checked when the import runs)."""
    if path.suffix.lower() not in SUFFIXES:
        raise ImportRefused("只接受 .csv 和 .xlsx 文件。")
    sheet = read_sheet(path, max_bytes, max_rows)
    entity = kind_of(sheet)
    _check_columns(sheet, REQUIRED_COLUMNS[entity])
    return entity, len(sheet.rows)


def _feedback_row(run: JourneyRun, named: Mapping[str, Any], customers: Mapping[tuple[str, str], str],
                  modified_ms: int) -> tuple[dict[str, Any], tuple[Problem, ...]]:
    """A survey answer's values (customer resolved, a stable id when none is given) and its own problems."""
    company = _customer_of(named, customers)
    problems: tuple[Problem, ...] = ()
    if company is None:
        shown = "、".join(str(named[k]) for k in CUSTOMER_COLUMNS if named.get(k) is not None) or "（空）"
        problems = (_problem(run, FEEDBACK, "missing_customer_link", "company_id",
                             f"客户「{shown[:60]}」在 CRM 中找不到（或名称对应多个客户）。"
                             "请客服部填写正确的客户编号或统一社会信用代码后重新导入。"),)
    rid = named.get("response_id") or _stable_id(
        "imp", company, named.get("survey_type"), named.get("survey_name"), named.get("submitted_at"),
        named.get("contact_id"),
    )
    values = {**named, "response_id": str(rid), "origin": ORIGIN_IMPORT, "company_id": company,
              "modified_at": modified_ms}
    return values, problems


def _review_row(run: JourneyRun, named: Mapping[str, Any], people: Mapping[str, str | None]
                ) -> tuple[dict[str, Any], tuple[Problem, ...]]:
    """A rating's values (person resolved through the OA, the period's id) and its own problems."""
    person = named.get("person_id") if named.get("person_id") is not None else named.get("email")
    user = people.get(str(person)) if person is not None else None
    problems: tuple[Problem, ...] = ()
    if user is None:
        problems = (_problem(run, REVIEW, "owner_not_in_oa", "person_id",
                             f"员工「{str(person or '（空）')[:60]}」在 OA 中找不到。"
                             "请人力资源部填写正确的员工编号或员工邮箱后重新导入。"),)
    period = named.get("period_id") or _stable_id("imp", named.get("period_name"))
    values = {**named, "person_id": user, "period_id": str(period), "origin": ORIGIN_IMPORT,
              "review_id": f"{period}:{user or person}", "stage": named.get("stage") or "imported",
              "submitted_at": named.get("submitted_at") or named.get("period_end")}
    return values, problems


def candidates(run: JourneyRun, entity: str, sheet: Sheet, facts: FileFacts) -> list[Candidate]:
    """The rows of a file of ``entity`` as candidates, customers resolved in the hub or people in the OA."""
    _check_columns(sheet, REQUIRED_COLUMNS[entity])
    extra = CUSTOMER_COLUMNS if entity == FEEDBACK else PERSON_COLUMNS
    named_rows = [(n, _named(run, entity, extra, row)) for n, row in sheet.rows]
    cells = [named for _n, named in named_rows]
    if entity == FEEDBACK:
        customers = _customers(run, cells)
        built = [(n, _feedback_row(run, named, customers, facts.modified_ms)) for n, named in named_rows]
    else:
        people = _people(run, cells)
        built = [(n, _review_row(run, named, people)) for n, named in named_rows]
    return [Candidate(values, ref=f"{facts.name}#{n}", row=n, problems=problems) for n, (values, problems) in built]


# ---------------------------------------------------------------- files
def _move(path: Path, folder: str, note: str | None = None) -> Path:
    """Move a read file to ``done/`` or ``failed/`` beside it (a clash gets a time suffix); ``note`` is saved
    as ``<name>.error.txt`` next to it."""
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    if note is not None:
        target.with_name(target.name + ".error.txt").write_text(note + "\n", encoding="utf-8")
    return target


def _audit_file(run: JourneyRun, entity: str | None, name: str, outcome: str, detail: str) -> None:
    target = (SYSTEM_OF[entity], entity) if entity else ("bridge", "journey_import")
    with run.hub.begin() as conn:
        write_audit(conn, run.ctx, [run.audit("import", target, {"file": name}, [], outcome, detail[:500])])


def import_file(run: JourneyRun, path: Path) -> Path:
    """Import one file; returns where it was moved (``done/`` or ``failed/``). Never raises for its content."""
    facts = FileFacts(path.name, int(path.stat().st_mtime * 1000))
    entity: str | None = None
    try:
        sheet = read_sheet(path, run.cfg.max_import_bytes, run.cfg.max_import_rows)
        entity = kind_of(sheet)
        rows = candidates(run, entity, sheet, facts)
    except ImportRefused as refused:
        message = f"文件「{path.name}」未导入：{refused}"
        log.warning("journey import %s refused: %s", path.name, refused)
        _audit_file(run, entity, path.name, "refused", message)
        run.tally.add("import_files_failed")
        return _move(path, "failed", message)
    quarantined = 0
    for start in range(0, len(rows), BATCH):
        quarantined += stage_batch(run, entity, rows[start : start + BATCH]).quarantined
    detail = f"{len(rows)} 行，{len(rows) - quarantined} 行暂存，{quarantined} 行隔离"
    _audit_file(run, entity, path.name, "read", detail)
    run.tally.add("import_files_done")
    run.tally.add("import_rows", len(rows))
    return _move(path, "done")


def pending_files(folder: Path) -> Iterator[Path]:
    """The files waiting in ``folder`` (not its done/ and failed/), oldest first."""
    if not folder.is_dir():
        return iter(())
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "~$"))]
    return iter(sorted(files, key=lambda p: (p.stat().st_mtime, p.name)))


def import_folder(run: JourneyRun) -> None:
    """Every file waiting in ``journey.import_dir`` (task ``imports``); a file of another kind is refused, one
    changed within ``journey.import_quiet_seconds`` (still being copied) is left for the next run."""
    quiet_until = time.time() - run.cfg.import_quiet_seconds  # file times are the wall clock's, not the run's
    for path in pending_files(import_dir(run)):
        if path.stat().st_mtime > quiet_until:
            run.tally.add("import_files_waiting")
            continue
        if path.suffix.lower() not in SUFFIXES:
            message = f"文件「{path.name}」未导入：只接受 .csv 和 .xlsx 文件。"
            _audit_file(run, None, path.name, "refused", message)
            run.tally.add("import_files_failed")
            _move(path, "failed", message)
            continue
        import_file(run, path)
