"""The history migration's parameters: what the Airflow Params form asks and how it is checked.

The DAG builds its Params form from :data:`PARAM_SPECS` (Chinese titles and
help text for IT staff); :meth:`MigrationParams.from_mapping` checks a run's
values and resolves the date range into epoch milliseconds once, at plan time,
so a cleared or resumed run reads exactly the range it planned.

Ranges: CRM records by their last modification time (what the CRM hook's
incremental read pages by), OA instances by their creation time (what
Feishu lists by). Dates are business dates in Asia/Shanghai; ``date_to`` is
inclusive and never later than the moment the run is planned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

# Asia/Shanghai (no DST since 1991); the same as bridge.dictionary.formats.SHANGHAI, kept local so that the
# DAG file can import the Params specs at parse time without loading the dictionary package.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

CRM_ENTITIES = ("company", "contact", "deal")
OA_ENTITIES = ("project_initiation", "expense_claim", "travel_request", "visit_plan")
ENTITIES = (*CRM_ENTITIES, *OA_ENTITIES)
ENTITY_LABELS = {
    "company": "客户（CRM）",
    "contact": "联系人（CRM）",
    "deal": "商机（CRM）",
    "project_initiation": "立项申请（OA）",
    "expense_claim": "费用报销（OA）",
    "travel_request": "差旅申请（OA）",
    "visit_plan": "客户拜访计划（OA）",
}
# Feishu approval v4 cannot be older than this; an empty date_from starts the OA here.
OA_EARLIEST = date(2018, 1, 1)
DEFAULT_CHUNK_SIZE = 10_000
MIN_CHUNK_SIZE = 20
MAX_CHUNK_SIZE = 200_000

CONFIRM_TEXT = "确认正式迁移"

# Records deleted (archived) in the CRM during the period: migrated as archived, or left out and counted.
ARCHIVED_CHOICES = {
    "migrate": "migrate（迁移，标记为已删除归档；不关联、不回写、不产生 OA 单据）",
    "skip": "skip（不迁移，只在报告中计数）",
}
DEFAULT_ARCHIVED = "migrate"

# What the Airflow Params form shows (dags/history_migration.py turns these into Param objects).
#
# Airflow checks each value against its JSON schema when the run is created (the trigger form and
# ``POST /api/v2/dags/history_migration/dagRuns`` answer 400 and create no run); the API's reason is
# jsonschema's English sentence plus the failing (sub)schema, so every schema that can fail carries the
# field's Chinese name and the allowed values in ``title`` or ``description``. The chunk size's range sits
# inside ``allOf``: the trigger form reads a top-level ``minimum``/``maximum`` and silently clamps the
# number into it on blur (−5 became 20), while the server checks ``allOf`` as well. What one value alone
# cannot say (a real load needs the confirmation) is checked by :meth:`MigrationParams.from_mapping` in
# the run's first task, before the lease and before any write.
PARAM_SPECS: dict[str, dict[str, Any]] = {
    "entities": {
        "default": list(ENTITIES),
        "type": "array",
        "items": {
            "type": "string",
            "enum": list(ENTITIES),
            "description": "「迁移哪些数据」只能选："
            + "、".join(f"{k}（{v}）" for k, v in ENTITY_LABELS.items()),
        },
        "minItems": 1,
        "uniqueItems": True,
        "title": "迁移哪些数据（至少选一项）",
        "description": "勾选要迁移的 CRM 对象和 OA 表单。客户会先去重（统一社会信用代码、规范化名称）；"
        "OA 表单会关联到 CRM 的商机（立项申请）或客户（报销、差旅、拜访）。",
        "examples": list(ENTITIES),
        "values_display": ENTITY_LABELS,
    },
    "date_from": {
        "default": None,
        "type": ["null", "string"],
        "format": "date",
        "pattern": r"^\d{4}-\d{2}-\d{2}$",
        "title": "起始日期（YYYY-MM-DD，可留空）",
        "description": "只迁移此日期（北京时间，含当天）之后的数据：CRM 按最后修改时间，OA 按提交时间。"
        f"留空 = 不限（OA 从 {OA_EARLIEST.isoformat()} 起）。",
    },
    "date_to": {
        "default": None,
        "type": ["null", "string"],
        "format": "date",
        "pattern": r"^\d{4}-\d{2}-\d{2}$",
        "title": "截止日期（YYYY-MM-DD，可留空）",
        "description": "只迁移到此日期（北京时间，含当天）为止的数据，不能早于起始日期。留空 = 到本次运行开始的时刻。"
        "运行期间新产生的修改由日常同步处理。",
    },
    "archive_before": {
        "default": None,
        "type": ["null", "string"],
        "format": "date",
        "pattern": r"^\d{4}-\d{2}-\d{2}$",
        "title": "归档截止日期（YYYY-MM-DD，可留空）",
        "description": "最后修改时间早于此日期的记录视为已归档：保留在源系统中作为备份，只在中枢库中登记并标记为归档，"
        "不做校验、关联和回写。留空 = 不归档。",
    },
    "archived_records": {
        "default": DEFAULT_ARCHIVED,
        "type": "string",
        "enum": list(ARCHIVED_CHOICES),
        "title": "CRM 中已删除的记录（migrate 迁移为归档 / skip 跳过）",
        "description": "期间内在 CRM 中被删除（进入回收站）的客户、联系人、商机：migrate = 迁移并在中枢库中标记为已删除归档，"
        "不校验、不关联、不回写，也不会为其提交立项申请；skip = 不迁移，只在报告中计数。"
        "在 CRM 中被合并掉的记录一律不单独迁移：其编号（包括 OA 单据和关联中出现的）都映射到合并后保留的记录。",
        "values_display": ARCHIVED_CHOICES,
    },
    "chunk_size": {
        "default": DEFAULT_CHUNK_SIZE,
        "type": "integer",
        "allOf": [
            {
                "minimum": MIN_CHUNK_SIZE,
                "maximum": MAX_CHUNK_SIZE,
                "description": f"「每批记录数」的允许范围：{MIN_CHUNK_SIZE} 到 {MAX_CHUNK_SIZE} 的整数",
            }
        ],
        "title": f"每批记录数（{MIN_CHUNK_SIZE}–{MAX_CHUNK_SIZE} 的整数）",
        "description": f"每个迁移批次（一个并行任务）大约处理多少条记录，允许 {MIN_CHUNK_SIZE} 到 {MAX_CHUNK_SIZE}；"
        "超出范围时不会创建运行。批次是断点续跑的单位：失败或被清除的运行"
        "从最后一个完成的批次之后继续。内存占用与此无关（记录按页流式处理）。",
    },
    "dry_run": {
        "default": True,
        "type": "boolean",
        "title": "试运行（只检查，不写入）",
        "description": "默认打开：照常读取、清洗、去重、校验和关联，并生成完整报告，但不写入任何数据："
        "不回写 CRM，不改动中枢库的快照、关联和隔离区。正式迁移请关闭此项，"
        f"并在「{CONFIRM_TEXT}」中输入“{CONFIRM_TEXT}”。",
    },
    "attachments": {
        "default": None,
        "type": ["null", "boolean"],
        "title": "迁移附件（留空 = 按系统设置 attachments.enabled）",
        "description": "打开时，迁移的已通过的费用报销、差旅申请中的附件（发票、扫描件）会以私有文件上传到 CRM 客户的文件夹，"
        "并在中枢库中关联到客户和商机；内容相同的文件（按 SHA-256）整个历史只上传一次，中断后续跑不会重复上传。"
        "留空 = 按 include/settings.yaml 的 attachments.enabled；试运行时不传送附件。",
    },
    "confirm_load": {
        "default": None,
        "type": ["null", "string"],
        "pattern": f"^({CONFIRM_TEXT})?$",
        "title": f"{CONFIRM_TEXT}（正式迁移时输入“{CONFIRM_TEXT}”）",
        "description": f"关闭试运行、正式写入 CRM 和中枢库时，请在此输入“{CONFIRM_TEXT}”六个字；"
        "试运行时留空。没有这项确认，正式迁移会在开始前被拒绝，不写入任何数据。",
    },
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ParamsError(ValueError):
    """A parameter value the migration cannot use; the message (Chinese) says which and what to enter."""


FIELD_NAMES = {
    "entities": "迁移哪些数据",
    "date_from": "起始日期",
    "date_to": "截止日期",
    "archive_before": "归档截止日期",
    "archived_records": "CRM 中已删除的记录",
    "chunk_size": "每批记录数",
    "dry_run": "试运行",
    "attachments": "迁移附件",
    "confirm_load": CONFIRM_TEXT,
}


def _shown(raw: Any) -> str:
    """A bad value as the person typed it, short (one line of the log)."""
    text = repr(raw) if not isinstance(raw, str) else f"“{raw}”"
    return text if len(text) <= 40 else text[:37] + "…"


def _bad(name: str, raw: Any, allowed: str) -> ParamsError:
    """``参数「每批记录数」（chunk_size）的值 -5 不可用：应为 20 到 200000 的整数。``"""
    return ParamsError(f"参数「{FIELD_NAMES[name]}」（{name}）的值 {_shown(raw)} 不可用：{allowed}。")


def _date(raw: Any, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return raw.astimezone(SHANGHAI).date() if raw.tzinfo else raw.date()
    if isinstance(raw, date):
        return raw
    allowed = "应为 YYYY-MM-DD 格式的日期（如 2025-01-31），或留空"
    if not isinstance(raw, str) or not _DATE.match(raw.strip()):
        raise _bad(name, raw, allowed)
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise _bad(name, raw, "不是日历上存在的日期；" + allowed) from None


def _entities(raw: Any) -> tuple[str, ...]:
    allowed = "至少选一项，可选：" + "、".join(f"{k}（{v}）" for k, v in ENTITY_LABELS.items())
    items = raw
    if isinstance(items, str):
        items = [e.strip() for e in items.replace("，", ",").split(",") if e.strip()]
    if not isinstance(items, list | tuple) or not items or any(e not in ENTITIES for e in items):
        raise _bad("entities", raw, allowed)
    return tuple(e for e in ENTITIES if e in items)


def _archived_records(raw: Any) -> str:
    if isinstance(raw, str) and raw.strip() in ARCHIVED_CHOICES:
        return raw.strip()
    raise _bad("archived_records", raw, "只能是 migrate（迁移为归档，默认）或 skip（跳过并计数）")


def _chunk_size(raw: Any) -> int:
    allowed = f"应为 {MIN_CHUNK_SIZE} 到 {MAX_CHUNK_SIZE} 之间的整数"
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _bad("chunk_size", raw, allowed)
    try:
        size = int(raw)
    except ValueError:
        raise _bad("chunk_size", raw, allowed) from None
    if not MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE:
        raise _bad("chunk_size", raw, allowed)  # never clamped: a wrong number is a wrong intention
    return size


def _dry_run(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, str) else None
    if text in ("true", "false"):
        return text == "true"
    raise _bad("dry_run", raw, "应为 true（试运行，默认）或 false（正式迁移）")


def _confirmed(raw: Any, dry_run: bool) -> bool:
    if raw not in (None, "", CONFIRM_TEXT):
        raise _bad("confirm_load", raw, f"只能留空或输入“{CONFIRM_TEXT}”")
    if not dry_run and raw != CONFIRM_TEXT:
        raise ParamsError(
            f"正式迁移需要确认：关闭了「试运行」，但参数「{CONFIRM_TEXT}」（confirm_load）没有填写"
            f"“{CONFIRM_TEXT}”。\n本次运行没有写入任何数据。要正式迁移，请重新触发并在该项中输入"
            f"“{CONFIRM_TEXT}”；只想检查数据，请保持「试运行」打开。"
        )
    return raw == CONFIRM_TEXT


def _attachments(raw: Any) -> bool | None:
    """None (empty): follow the settings; otherwise a boolean (the form's checkbox, or its JSON text)."""
    answers = {"": None, "true": True, "false": False}
    key = raw if isinstance(raw, bool) or raw is None else str(raw).strip().lower()
    if key is None or isinstance(key, bool):
        return key
    if key in answers:
        return answers[key]
    raise _bad("attachments", raw, "应为 true（迁移附件）、false（不迁移附件）或留空（按系统设置）")


def check_names(raw: Mapping[str, Any]) -> None:
    """A key the DAG does not know (a typo in the Config JSON or a CLI conf) is refused, not ignored."""
    unknown = sorted(str(k) for k in raw if k not in PARAM_SPECS)
    if unknown:
        raise ParamsError(
            f"未知的参数 {', '.join(unknown)[:80]}：本 DAG 只接受 {', '.join(PARAM_SPECS)}。"
            "请检查拼写（见 docs/migration.md 的参数表）。"
        )


def day_start_ms(day: date) -> int:
    """Epoch ms of midnight Asia/Shanghai at the start of ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).timestamp() * 1000)


def ms_to_iso(ms: int) -> str:
    """A range bound for people: Asia/Shanghai time, to the second."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class MigrationParams:
    """One run's checked parameters, with the date range resolved to epoch milliseconds.

    ``crm_from_ms``/``to_ms`` bound modification times (``[from, to)``);
    ``oa_from_ms``/``to_ms`` creation times; ``archive_before_ms`` is None when
    nothing is archived.
    """

    entities: tuple[str, ...]
    date_from: str | None
    date_to: str | None
    archive_before: str | None
    chunk_size: int
    dry_run: bool
    crm_from_ms: int
    oa_from_ms: int
    to_ms: int
    archive_before_ms: int | None
    archived_records: str = DEFAULT_ARCHIVED
    attachments: bool | None = None  # None: follow ``attachments.enabled`` of the settings

    @property
    def crm_entities(self) -> list[str]:
        return [e for e in CRM_ENTITIES if e in self.entities]

    @property
    def oa_entities(self) -> list[str]:
        return [e for e in OA_ENTITIES if e in self.entities]

    def as_dict(self) -> dict[str, Any]:
        """What ``migration_run.params`` stores (JSON); :meth:`from_stored` reads it back."""
        data = asdict(self)
        data["entities"] = list(self.entities)
        return data

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> MigrationParams:
        return cls(
            entities=tuple(data["entities"]),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            archive_before=data.get("archive_before"),
            chunk_size=int(data["chunk_size"]),
            dry_run=bool(data["dry_run"]),
            crm_from_ms=int(data["crm_from_ms"]),
            oa_from_ms=int(data["oa_from_ms"]),
            to_ms=int(data["to_ms"]),
            archive_before_ms=None
            if data.get("archive_before_ms") is None
            else int(data["archive_before_ms"]),
            archived_records=str(data.get("archived_records") or DEFAULT_ARCHIVED),
            attachments=data.get("attachments"),
        )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], now: datetime) -> MigrationParams:
        """Check the Params form's values (or a run's conf) and resolve the range at ``now``."""
        check_names(raw)
        entities = _entities(raw.get("entities", PARAM_SPECS["entities"]["default"]))
        date_from = _date(raw.get("date_from"), "date_from")
        date_to = _date(raw.get("date_to"), "date_to")
        archive = _date(raw.get("archive_before"), "archive_before")
        if date_from and date_to and date_from > date_to:
            raise ParamsError(
                f"参数「起始日期」（date_from）{date_from} 晚于「截止日期」（date_to）{date_to}："
                "起始日期应不晚于截止日期，请改正日期范围。"
            )
        archived_records = _archived_records(raw.get("archived_records", DEFAULT_ARCHIVED))
        size = _chunk_size(raw.get("chunk_size", DEFAULT_CHUNK_SIZE))
        dry = _dry_run(raw.get("dry_run", PARAM_SPECS["dry_run"]["default"]))
        _confirmed(raw.get("confirm_load"), dry)
        now_ms = int(now.timestamp() * 1000)
        to_ms = now_ms if date_to is None else min(now_ms, day_start_ms(date_to + timedelta(days=1)))
        crm_from = day_start_ms(date_from) if date_from else 0
        oa_from = day_start_ms(date_from) if date_from else day_start_ms(OA_EARLIEST)
        return cls(
            entities=entities,
            date_from=date_from.isoformat() if date_from else None,
            date_to=date_to.isoformat() if date_to else None,
            archive_before=archive.isoformat() if archive else None,
            chunk_size=size,
            dry_run=bool(dry),
            crm_from_ms=crm_from,
            oa_from_ms=oa_from,
            to_ms=to_ms,
            archive_before_ms=day_start_ms(archive) if archive else None,
            archived_records=archived_records,
            attachments=_attachments(raw.get("attachments")),
        )


def safe_run_dir_name(run_id: str) -> str:
    """A folder name for a run id (Airflow run ids hold ``:`` and ``+``): safe characters only, bounded."""
    import hashlib

    name = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).strip("._") or "run"
    if len(name) > 120 or name != run_id:
        digest = hashlib.sha1(run_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
        name = f"{name[:110]}-{digest}"
    return name
