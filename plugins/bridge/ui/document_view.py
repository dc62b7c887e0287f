"""The rows of the documents page (客户文件) as one viewer's role may see them: pure, no I/O.

A customer's documents come from the hub (:func:`bridge.hub.documents.documents_for_company`: one row per
content and record it is attached to, in either system). Each row is shown by the viewer's document access
(:meth:`bridge.permissions.Policy.document_access`): **open** — name and link; **listed** — the row with its
name masked and no link; **none** — left out. The record a file is attached to is named by what the role may
see of that record (deal name, project number, instance code, …, through ``Policy.project``), never by a
field the role may not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.hub.documents import RecordDocument
from bridge.permissions import DocumentAccess, Policy
from bridge.sync.transfer import kind_label
from bridge.ui import display

SYSTEM_LABELS = {"crm": "CRM", "oa": "OA"}
ORIGIN_LABELS = {"source": "人员上传", "bridge": "数据桥同步"}
# What names an attached record, best first, among the fields the role may see of it.
CAPTION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "deal": ("deal_name", "project_no", "crm_id"),
    "company": ("name", "crm_id"),
}
OA_CAPTION_FIELDS = ("project_no", "serial_number", "instance_code")
# Served as downloads whatever the type; the common ones named so a browser offers the right program.
MEDIA_TYPES = {"pdf": "application/pdf", "jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class DocumentRow:
    """One row of the page, already cut to the viewer's role."""

    sha256: str
    name: str
    class_label: str
    kind_label: str
    size_text: str
    system: str
    system_label: str
    record_text: str
    created_at: datetime
    origin_label: str
    may_open: bool


def size_text(size: int) -> str:
    """12 字节, 3.4 KB, 1.5 MB, 2.10 GB (1024-based, as people read file sizes)."""
    if size < 1024:
        return f"{size} 字节"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "GB" else f"{value:.2f} GB"
    return f"{size} 字节"  # pragma: no cover - the loop always returns


def masked_file_name(name: str) -> str:
    """A file name for a role that may not open the file: the first character and the extension kept."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 8:
        stem, ext = name, ""
    return display_mask(stem) + (f".{ext}" if ext else "")


def display_mask(text: str) -> str:
    return text[:1] + "*" * min(max(len(text) - 1, 3), 8)


def record_text(policy: Policy, role: str, record: tuple[str, str], payload: Mapping[str, Any] | None) -> str:
    """「商机 测试项目12」: the record's kind and the first of its naming fields the role may see."""
    record_type, record_id = record
    label = display.ENTITY_LABELS.get(record_type, record_type)
    entity = policy.dictionary.entities.get(record_type)
    if entity is None:
        return label
    known = dict(payload or {})
    known.setdefault(entity.id_field or "crm_id", record_id)
    visible = policy.project(record_type, known, role)
    names = CAPTION_FIELDS.get(record_type, OA_CAPTION_FIELDS if entity.system == "oa" else ("crm_id",))
    for name in names:
        if visible.get(name):
            return f"{label} {visible[name]}"
    return f"{label}（编号对你的角色不可见）"


def document_rows(
    policy: Policy,
    role: str,
    docs: Iterable[RecordDocument],
    payloads: Mapping[tuple[str, str, str], Mapping[str, Any]],
) -> list[DocumentRow]:
    """The rows ``role`` may see, in the given order; ``payloads``: (system, type, id) → canonical record."""
    rows: list[DocumentRow] = []
    for doc in docs:
        access = policy.document_access(role, doc.doc_class)
        if access is DocumentAccess.NONE:
            continue
        may_open = access is DocumentAccess.OPEN
        payload = payloads.get((doc.system, doc.record_type, doc.record_id))
        rows.append(
            DocumentRow(
                sha256=doc.sha256,
                name=doc.name if may_open else masked_file_name(doc.name),
                class_label=policy.document_class_label(doc.doc_class),
                kind_label=kind_label(doc.kind),
                size_text=size_text(doc.size),
                system=doc.system,
                system_label=SYSTEM_LABELS.get(doc.system, doc.system),
                record_text=record_text(policy, role, (doc.record_type, doc.record_id), payload),
                created_at=doc.created_at,
                origin_label=ORIGIN_LABELS.get(doc.origin or "", "未知"),
                may_open=may_open,
            )
        )
    return rows


def refusal_text(policy: Policy, role: str, doc_class: str) -> str:
    """The 403 message: which class, who may open it, and what to do (Chinese)."""
    label = policy.document_class_label(doc_class)
    openers = "、".join(policy.roles[r] for r in policy.document_openers(doc_class)) or "（没有角色）"
    return (
        f"「{label}」类文件只有以下角色可以打开：{openers}。你的角色（{policy.roles[role]}）不能打开这个文件。"
        "如需查看，请联系管理员在 include/settings.yaml 的 ui.user_roles 中为你的 Airflow 用户设置相应角色，"
        "或在 include/permissions.yaml 的 documents.classes 中调整。"
    )
