"""Document classes of the permission policy (``documents:`` of ``include/permissions.yaml``, issue 19).

Attachments (contract scans, invoices, other files) are classed ``contract``,
``invoice`` or ``other`` (``document.doc_class`` in the hub). For each class
the policy names the roles that may **open** a file (download it, follow its
link) and the roles for whom it is only **listed** (the row with its kind,
size, system and time, its name masked, no link). Every other role does not
see that the document exists. Unlisted means denied, as for fields.

The rules are read by :class:`bridge.permissions.Policy` (``document_access``,
``may_open_document``); this module holds the shapes and the load-time checks
(every class of :data:`DOCUMENT_CLASSES` present, nothing else, only defined
roles, a role in ``open`` or ``listed`` but not both) so the policy module stays
one job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from bridge.dictionary.shape import Node, Text, Where, parse
from bridge.dictionary.yamlio import LineDict

__all__ = [
    "DOCUMENT_CLASSES",
    "DocumentAccess",
    "DocumentClass",
    "DocumentRules",
    "build_document_rules",
]

# The classes the transfers give a document (hub ``document.doc_class``); the policy must rule on each.
DOCUMENT_CLASSES = ("contract", "invoice", "other")


class DocumentAccess(StrEnum):
    """What a role may do with a document of a class."""

    NONE = "none"  # the row is not shown
    LISTED = "listed"  # the row is shown (name masked), no link, a 403 naming who may open it
    OPEN = "open"  # the row, its name and its link


@dataclass(frozen=True)
class DocumentClass:
    name: str
    label: str  # 合同 / 发票 / 其他
    open: tuple[str, ...]
    listed: tuple[str, ...]


@dataclass(frozen=True)
class DocumentRules:
    """The validated ``documents:`` section; an unknown class or role gets :attr:`DocumentAccess.NONE`."""

    classes: Mapping[str, DocumentClass]

    def access(self, role: str, doc_class: str) -> DocumentAccess:
        rule = self.classes.get(doc_class)
        if rule is None:
            return DocumentAccess.NONE
        if role in rule.open:
            return DocumentAccess.OPEN
        if role in rule.listed:
            return DocumentAccess.LISTED
        return DocumentAccess.NONE

    def label(self, doc_class: str) -> str:
        rule = self.classes.get(doc_class)
        return rule.label if rule is not None else "未分类"

    def openers(self, doc_class: str) -> tuple[str, ...]:
        rule = self.classes.get(doc_class)
        return rule.open if rule is not None else ()


CLOSED = DocumentRules({})  # a policy without ``documents:``: nobody sees any document (fail closed)


class DocumentsTop(Node):
    classes: Any = None

    UNKNOWN_KEY: ClassVar[str] = "documents 下只能有 classes（文件类别），不能有 {key!r}。"


class DocumentClassSpec(Node):
    label: Text = None
    open: Any = None
    listed: Any = None

    UNKNOWN_KEY: ClassVar[str] = (
        "文件类别中有未知的键 {key!r}；只能有 label（中文名称）、open（可打开文件的角色）"
        "和 listed（只能看到列表、不能打开的角色）。"
    )


# issue(line, message, role=...) of the policy builder
Report = Callable[..., None]


def _mapping(node: Any) -> LineDict | None:
    if not isinstance(node, dict):
        return None
    return node if isinstance(node, LineDict) else LineDict(node)


def _roles_of(
    spec: LineDict, key: str, cls: str, roles: Mapping[str, str], report: Report
) -> tuple[str, ...]:
    """The role names under ``key`` of a class: a list of defined roles, each once."""
    raw = spec.get(key)
    line = spec.line_of(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        report(line, f"documents.classes.{cls}.{key} 必须是角色列表，如 [finance, management]。")
        return ()
    found: list[str] = []
    for role in raw:
        if not isinstance(role, str) or role not in roles:
            report(
                line,
                f"documents.classes.{cls}.{key} 中的角色 {role!r} 未在 roles 中定义；已有: {', '.join(roles)}。",
                role=str(role),
            )
        elif role in found:
            report(line, f"documents.classes.{cls}.{key} 中角色 {role} 出现了两次。", role=role)
        else:
            found.append(role)
    return tuple(found)


def _one_class(
    cls: str, node: Any, line: int | None, roles: Mapping[str, str], report: Report
) -> DocumentClass | None:
    spec = _mapping(node)
    if spec is None:
        report(line, f"documents.classes.{cls} 必须是映射，如 {{label: 合同, open: [finance]}}。")
        return None
    shape, complaints = parse(DocumentClassSpec, spec, Where(f"文件类别 {cls}"))
    for c in complaints:
        report(c.line, c.message)
    opened = _roles_of(spec, "open", cls, roles, report)
    listed = _roles_of(spec, "listed", cls, roles, report)
    for role in set(opened) & set(listed):
        report(
            spec.line_of("listed"),
            f"角色 {role} 同时出现在 documents.classes.{cls} 的 open 和 listed 中；只能选一个。",
            role=role,
        )
    if complaints or not shape.label:
        return None
    return DocumentClass(cls, shape.label, opened, tuple(r for r in listed if r not in opened))


def build_document_rules(
    node: Any, line: int | None, roles: Mapping[str, str], report: Report
) -> DocumentRules:
    """The ``documents:`` node validated; problems go to ``report`` (the policy then fails to load)."""
    if node is None:
        return CLOSED
    top = _mapping(node)
    if top is None:
        report(line, "documents 必须是映射，其下为 classes。")
        return CLOSED
    for c in parse(DocumentsTop, top, Where("documents"))[1]:
        report(c.line, c.message)
    classes = _mapping(top.get("classes"))
    if classes is None:
        report(top.line, f"documents 缺少 classes（文件类别 {', '.join(DOCUMENT_CLASSES)} 及可查看的角色）。")
        return CLOSED
    built: dict[str, DocumentClass] = {}
    for cls, spec in classes.items():
        if cls not in DOCUMENT_CLASSES:
            report(
                classes.line_of(cls),
                f"文件类别 {cls!r} 未知；只能是 {', '.join(DOCUMENT_CLASSES)}（合同、发票、其他）。",
            )
            continue
        rule = _one_class(cls, spec, classes.line_of(cls), roles, report)
        if rule is not None:
            built[cls] = rule
    for cls in DOCUMENT_CLASSES:
        if cls not in classes:
            report(classes.line, f"documents.classes 缺少文件类别 {cls}；请写明哪些角色可以打开这类文件。")
    return DocumentRules(built)
