"""The permission policy (``include/permissions.yaml``): roles × fields, masks, audiences.

:meth:`Policy.project` is the one function applied to everything that leaves
the bridge: it keeps the fields the role may see, masks the ones it may see
masked, and drops the rest (a field not listed is denied). The audience of
each outbound thing (form, notice, CRM write, report, export) is a role,
looked up with :meth:`Policy.audience`.

The policy is validated against the data dictionary at load: unknown roles,
entities or fields fail, and so does a policy under which an outbound form
could not be filled (a required widget its audience may not see) or a CRM
write would lose a field it must send.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.dictionary import Dictionary
from bridge.dictionary import load as load_dictionary
from bridge.dictionary.errors import ConfigIssue, PolicyError
from bridge.dictionary.shape import EntityRules, NodeT, PolicyTop, RoleRules, RoleSpec, Where, parse
from bridge.dictionary.yamlio import LineDict, build_file
from bridge.permissions_documents import (
    DOCUMENT_CLASSES,
    DocumentAccess,
    DocumentRules,
    build_document_rules,
)

__all__ = [
    "AUDIENCE_KINDS",
    "DOCUMENT_CLASSES",
    "MASKS",
    "DocumentAccess",
    "Policy",
    "PolicyError",
    "default_path",
    "load",
    "mask_value",
]

AUDIENCE_KINDS = ("form", "notice", "crm_write", "report", "export")
MASKABLE_TYPES = frozenset({"string", "text"})


# ---------------------------------------------------------------- masks
_MIN_HIDDEN = 4  # fewer hidden characters than this reveals too much: star everything


def _keep_ends(text: str, head: int, tail: int) -> str:
    """Keep ``head`` and ``tail`` characters, star every letter/digit between (separators kept)."""
    middle = "".join("*" if ch.isalnum() else ch for ch in text[head : len(text) - tail])
    if len(text) <= head + tail or middle.count("*") < _MIN_HIDDEN:
        return "*" * len(text)
    return text[:head] + middle + text[len(text) - tail :]


def mask_mobile(text: str) -> str:
    """13812345678 → 138****5678."""
    return _keep_ends(text, 3, 4)


def mask_email(text: str) -> str:
    """zhang.san@example.com → z***@example.com."""
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_id_number(text: str) -> str:
    """USCC / ID numbers: first 4 and last 4 kept."""
    return _keep_ends(text, 4, 4)


def mask_name(text: str) -> str:
    """张三丰 → 张**."""
    return "*" if len(text) <= 1 else text[0] + "*" * (len(text) - 1)


def mask_full(text: str) -> str:
    return "***"


MASKS: dict[str, Callable[[str], str]] = {
    "mobile": mask_mobile,
    "phone": mask_mobile,
    "email": mask_email,
    "id_number": mask_id_number,
    "name": mask_name,
    "full": mask_full,
}


def mask_value(kind: str, value: Any) -> Any:
    """``value`` masked with mask ``kind``; None stays None."""
    if value is None:
        return None
    return MASKS[kind](value if isinstance(value, str) else str(value))


# ---------------------------------------------------------------- policy
Rule = tuple[tuple[str, Callable[[str], str] | None], ...]


class Policy:
    """A validated permission policy. Use :func:`load`."""

    def __init__(
        self,
        *,
        path: Path,
        version: str,
        roles: Mapping[str, str],
        masks: Mapping[str, Mapping[str, str]],
        visibility: Mapping[tuple[str, str], Mapping[str, str | None]],
        audiences: Mapping[str, Mapping[str, str]],
        dictionary: Dictionary,
    ) -> None:
        self.path = path
        self.version = version
        self.roles = dict(roles)  # role → Chinese label
        self.masks = {e: dict(m) for e, m in masks.items()}  # entity → field → mask kind
        self.audiences = {k: dict(v) for k, v in audiences.items()}
        self.dictionary = dictionary
        # Document classes (``documents:``): set by the loader; none means nobody sees a document (fail closed).
        self.documents = DocumentRules({})
        # (entity, role) → {field: mask kind or None (clear)}
        self._visibility = {key: dict(v) for key, v in visibility.items()}
        self._rules: dict[tuple[str, str], Rule] = {
            key: tuple((f, MASKS[kind] if kind else None) for f, kind in v.items())
            for key, v in self._visibility.items()
        }
        # Whole-record display (quarantine, exports): every mask kind, and the fields the dictionary marks
        # sensitive (PIPL personal sensitive information) in full when the policy names no mask for them.
        whole = {e: dict(m) for e, m in self.masks.items()}
        for name, entity in dictionary.entities.items():
            for f in entity.fields.values():
                if f.sensitive:
                    whole.setdefault(name, {}).setdefault(f.name, "full")
        self._mask_all: dict[str, tuple[tuple[str, Callable[[str], str]], ...]] = {
            e: tuple((f, MASKS[kind]) for f, kind in m.items()) for e, m in whole.items()
        }

    def __repr__(self) -> str:
        return f"Policy(version={self.version!r}, path={str(self.path)!r}, roles={list(self.roles)})"

    def _error(
        self, message: str, *, role: str | None = None, entity: str | None = None, field: str | None = None
    ) -> PolicyError:
        return PolicyError(
            [ConfigIssue(str(self.path), None, message, entity=entity, field=field, role=role)]
        )

    def _check(self, entity: str, role: str) -> None:
        if role not in self.roles:
            raise self._error(f"角色 {role!r} 未定义；已有角色: {', '.join(self.roles)}。", role=role)
        if entity not in self.dictionary.entities:
            raise self._error(
                f"实体 {entity!r} 不在数据字典中；已有: {', '.join(self.dictionary.entities)}。",
                entity=entity,
            )

    def project(self, entity: str, record: Mapping[str, Any], role: str) -> dict[str, Any]:
        """What ``role`` may see of ``record``: allowed fields, masked where the policy says; the rest dropped."""
        rule = self._rules.get((entity, role))
        if rule is None:
            self._check(entity, role)
            return {}
        out: dict[str, Any] = {}
        for name, mask in rule:
            if name in record:
                value = record[name]
                if mask is not None and value is not None:
                    value = mask(value if isinstance(value, str) else str(value))
                out[name] = value
        return out

    def allowed(self, entity: str, field: str, role: str) -> bool:
        """Whether ``role`` sees ``field`` at all (in clear or masked)."""
        self._check(entity, role)
        return field in self._visibility.get((entity, role), {})

    def mask_of(self, entity: str, field: str, role: str) -> str | None:
        """The mask kind applied to the field for the role (None: clear or denied)."""
        self._check(entity, role)
        return self._visibility.get((entity, role), {}).get(field)

    def visibility(self, entity: str, role: str) -> dict[str, str | None]:
        """``{field: mask kind or None}`` of every field the role sees; unlisted fields are denied."""
        self._check(entity, role)
        return dict(self._visibility.get((entity, role), {}))

    def audience(self, kind: str, name: str) -> str:
        """The role that reads ``name`` of ``kind`` (form | notice | crm_write | report | export).

        Forms and notices share one namespace: a notice is a form the bridge fills.
        """
        kinds = ("form", "notice") if kind in ("form", "notice") else (kind,)
        if kind not in AUDIENCE_KINDS:
            raise self._error(f"受众类型 {kind!r} 未知；可用: {', '.join(AUDIENCE_KINDS)}。")
        for k in kinds:
            role = self.audiences.get(k, {}).get(name)
            if role is not None:
                return role
        raise self._error(
            f"audiences.{kind} 中没有 {name!r}；请在 {self.path.name} 的 audiences.{kind} 下指定读者角色。"
        )

    def covers(self, role: str, other: str) -> bool:
        """Whether ``role`` sees everything ``other`` sees, as clearly (a file built for ``other`` may go to ``role``).

        Every field ``other`` sees must be visible to ``role``; where ``other``
        sees it in clear, ``role`` must too; where both see it masked, with the
        same mask.
        """
        for name in (role, other):
            if name not in self.roles:
                raise self._error(f"角色 {name!r} 未定义；已有角色: {', '.join(self.roles)}。", role=name)
        if role == other:
            return True
        for entity in self.dictionary.entities:
            mine = self._visibility.get((entity, role), {})
            for name, kind in self._visibility.get((entity, other), {}).items():
                if name not in mine or (mine[name] is not None and mine[name] != kind):
                    return False
        return True

    def roles_covering(self, other: str) -> list[str]:
        """The roles that may receive what was built for ``other`` (see :meth:`covers`), in policy order."""
        return [role for role in self.roles if self.covers(role, other)]

    # ------------------------------------------------------------ documents (attachments, issue 19)
    def sees_customers(self, role: str) -> bool:
        """Whether ``role`` may see customers at all (their name): the precondition of seeing their documents."""
        return self.allowed("company", "name", role)

    def document_access(self, role: str, doc_class: str) -> DocumentAccess:
        """What ``role`` may do with a customer's document of ``doc_class``: none, listed (no link) or open.

        A role that does not see customers sees no document; a class the policy
        does not name is seen by nobody (fail closed). An unknown role is an error.
        """
        if not self.sees_customers(role):
            return DocumentAccess.NONE
        return self.documents.access(role, doc_class)

    def may_open_document(self, role: str, doc_class: str) -> bool:
        """Whether ``role`` may open (download, follow the link of) a customer's document of ``doc_class``."""
        return self.document_access(role, doc_class) is DocumentAccess.OPEN

    def document_openers(self, doc_class: str) -> list[str]:
        """The roles that may open a document of ``doc_class``, in policy order (for refusals naming who may)."""
        allowed = self.documents.openers(doc_class)
        return [role for role in self.roles if role in allowed and self.sees_customers(role)]

    def document_class_label(self, doc_class: str) -> str:
        """合同 / 发票 / 其他 (未分类 for a class the policy does not name)."""
        return self.documents.label(doc_class)

    def mask_all(self, entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record with every maskable value masked, nothing dropped (quarantine display, exports)."""
        out = dict(record)
        for name, mask in self._mask_all.get(entity, ()):
            value = out.get(name)
            if value is not None:
                out[name] = mask(value if isinstance(value, str) else str(value))
        return out


# ---------------------------------------------------------------- loading
def default_path() -> Path:
    from bridge import settings

    return settings.include_dir() / "permissions.yaml"


@dataclass(frozen=True)
class _Grants:
    """What a policy grants, as the cross-checks against the dictionary read it (``line``: where to point)."""

    line: int | None
    visibility: Mapping[tuple[str, str], Mapping[str, str | None]]
    audiences: Mapping[str, Mapping[str, str]]


class _Builder:
    def __init__(self, path: Path, dictionary: Dictionary) -> None:
        self.file = str(path)
        self.d = dictionary
        self.issues: list[ConfigIssue] = []

    def issue(
        self,
        line: int | None,
        message: str,
        *,
        role: str | None = None,
        entity: str | None = None,
        field: str | None = None,
    ) -> None:
        self.issues.append(ConfigIssue(self.file, line, message, entity=entity, field=field, role=role))

    @staticmethod
    def line(node: Any, key: str | None = None) -> int | None:
        if isinstance(node, LineDict):
            return node.line_of(key) if key is not None else node.line
        return None

    def parse(self, model: type[NodeT], node: LineDict, where: Where) -> NodeT:
        """The node's shape checked by its model (:mod:`bridge.dictionary.shape`); problems reported."""
        spec, complaints = parse(model, node, where)
        for c in complaints:
            self.issue(c.line, c.message, role=c.role, entity=c.entity, field=c.field)
        return spec

    def mapping(self, node: Any, what: str, line: int | None, **where: str) -> LineDict:
        if node is None:
            return LineDict()
        if not isinstance(node, dict):
            self.issue(line, f"{what} 必须是映射（key: value），现在是 {type(node).__name__}。", **where)
            return LineDict()
        return node if isinstance(node, LineDict) else LineDict(node)

    def build(self, raw: Any) -> Policy | None:
        if not isinstance(raw, dict):
            self.issue(None, "顶层必须是映射（version、roles、entities、audiences）。")
            return None
        root = raw if isinstance(raw, LineDict) else LineDict(raw)
        self.parse(PolicyTop, root, Where("文件顶层"))
        version = root.get("version")
        if not isinstance(version, str | int | float) or isinstance(version, bool) or version == "":
            self.issue(root.line, "缺少 version（每次修改策略时递增，审计记录会保存它）。")
            version = None
        roles = self.roles(root)
        masks, visibility = self.entities(root, roles)
        audiences = self.audiences(root, roles)
        documents = build_document_rules(root.get("documents"), root.line_of("documents"), roles, self.issue)
        self.cross_check(root, visibility, audiences)
        if self.issues or version is None:
            return None
        policy = Policy(
            path=Path(self.file),
            version=str(version),
            roles=roles,
            masks=masks,
            visibility=visibility,
            audiences=audiences,
            dictionary=self.d,
        )
        policy.documents = documents
        return policy

    def roles(self, root: LineDict) -> dict[str, str]:
        node = self.mapping(root.get("roles"), "roles", root.line_of("roles"))
        roles: dict[str, str] = {}
        if not node:
            self.issue(root.line, "缺少 roles（角色及其中文名称）。")
        for role, spec in node.items():
            if isinstance(spec, dict):
                self.parse(
                    RoleSpec, spec if isinstance(spec, LineDict) else LineDict(spec), Where(role, role=role)
                )
            label = spec.get("label") if isinstance(spec, dict) else None
            if not isinstance(label, str) or not label:
                self.issue(node.line_of(role), "角色必须有中文名称，如 {label: 销售主管}。", role=role)
                label = role
            roles[role] = label
        return roles

    def entities(
        self, root: LineDict, roles: Mapping[str, str]
    ) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str | None]]]:
        node = self.mapping(root.get("entities"), "entities", root.line_of("entities"))
        masks: dict[str, dict[str, str]] = {}
        visibility: dict[tuple[str, str], dict[str, str | None]] = {}
        for entity, spec in node.items():
            body = self.mapping(spec, f"实体 {entity}", node.line_of(entity), entity=entity)
            known = self.d.entities.get(entity)
            if known is None:
                self.issue(
                    node.line_of(entity),
                    f"实体 {entity!r} 不在数据字典中；已有: {', '.join(self.d.entities)}。",
                    entity=entity,
                )
                continue
            self.parse(EntityRules, body, Where(entity, entity=entity))
            entity_masks = masks[entity] = self.entity_masks(entity, body, known.fields)
            raw_roles = self.mapping(body.get("roles"), "roles", body.line_of("roles"), entity=entity)
            for role, rspec in raw_roles.items():
                line = raw_roles.line_of(role)
                undefined = f"角色 {role!r} 未在 roles 中定义；已有: {', '.join(roles)}。"
                if not self.undefined_role(role, roles, line, undefined, entity=entity):
                    visibility[(entity, role)] = self.role_fields(
                        entity, role, rspec, line, known.fields, entity_masks
                    )
        return masks, visibility

    def entity_masks(self, entity: str, body: LineDict, fields: Mapping[str, Any]) -> dict[str, str]:
        """``masks`` of an entity: field → mask kind, each a text field of the entity and a known kind."""
        raw_masks = self.mapping(body.get("masks"), "masks", body.line_of("masks"), entity=entity)
        entity_masks: dict[str, str] = {}
        for fname, kind in raw_masks.items():
            line = raw_masks.line_of(fname)
            f = fields.get(fname)
            if f is None:
                self.issue(
                    line,
                    f"masks 中的字段 {fname!r} 不在实体中；已有: {', '.join(fields)}。",
                    entity=entity,
                    field=fname,
                )
            elif kind not in MASKS:
                self.issue(
                    line, f"脱敏方式 {kind!r} 未知；可用: {', '.join(MASKS)}。", entity=entity, field=fname
                )
            elif f.type not in MASKABLE_TYPES:
                self.issue(
                    line,
                    f"只有文本字段可以脱敏（{fname} 是 {f.type}）；请改为不列出（拒绝）或明文。",
                    entity=entity,
                    field=fname,
                )
            else:
                entity_masks[fname] = str(kind)
        return entity_masks

    def role_fields(
        self,
        entity: str,
        role: str,
        spec: Any,
        line: int | None,
        fields: Mapping[str, Any],
        entity_masks: Mapping[str, str],
    ) -> dict[str, str | None]:
        body = self.mapping(spec, f"角色 {role} 的规则", line, role=role, entity=entity)
        rules = self.parse(RoleRules, body, Where(role, entity=entity, role=role))
        seen: dict[str, str | None] = {}
        for key, items in (("fields", rules.fields), ("masked", rules.masked)):
            for fname in items:
                if not isinstance(fname, str) or fname not in fields:
                    self.issue(
                        body.line_of(key),
                        f"字段 {fname!r} 不在实体 {entity} 中；已有: {', '.join(fields)}。",
                        role=role,
                        entity=entity,
                        field=str(fname),
                    )
                    continue
                if fname in seen:
                    self.issue(
                        body.line_of(key),
                        f"字段 {fname} 出现了两次（fields 与 masked 只能选一个）。",
                        role=role,
                        entity=entity,
                        field=fname,
                    )
                    continue
                if key == "masked":
                    kind = entity_masks.get(fname)
                    if kind is None:
                        self.issue(
                            body.line_of(key),
                            f"字段 {fname} 列为 masked，但实体 {entity} 的 masks 没有它的脱敏方式；"
                            f"请在 entities.{entity}.masks 添加，如 {fname}: mobile。",
                            role=role,
                            entity=entity,
                            field=fname,
                        )
                        continue
                    seen[fname] = kind
                else:
                    seen[fname] = None
        return seen

    def undefined_role(
        self, role: Any, roles: Mapping[str, str], line: int | None, message: str, **where: str
    ) -> bool:
        """True, with ``message`` reported, when ``role`` is not one the policy's ``roles`` defines."""
        if role in roles:
            return False
        self.issue(line, message, role=str(role), **where)
        return True

    def audiences(self, root: LineDict, roles: Mapping[str, str]) -> dict[str, dict[str, str]]:
        node = self.mapping(root.get("audiences"), "audiences", root.line_of("audiences"))
        result: dict[str, dict[str, str]] = {}
        for kind, spec in node.items():
            if kind not in AUDIENCE_KINDS:
                self.issue(node.line_of(kind), f"受众类型 {kind!r} 未知；可用: {', '.join(AUDIENCE_KINDS)}。")
                continue
            body = self.mapping(spec, f"audiences.{kind}", node.line_of(kind))
            result[kind] = {}
            for name, role in body.items():
                line = body.line_of(name)
                if self.undefined_role(
                    role,
                    roles,
                    line,
                    f"audiences.{kind}.{name} 的角色 {role!r} 未定义；已有: {', '.join(roles)}。",
                ):
                    continue
                if kind in ("form", "notice"):
                    form = self.d.forms.get(name)
                    if form is None or form.direction != "crm_to_oa":
                        self.issue(
                            line, f"audiences.{kind}.{name}: 数据字典中没有这个外发（crm_to_oa）表单。"
                        )
                        continue
                if kind == "crm_write" and name not in self.d.entities:
                    self.issue(line, f"audiences.crm_write.{name}: 数据字典中没有实体 {name}。", entity=name)
                    continue
                result[kind][name] = str(role)
        return result

    def cross_check(
        self,
        root: LineDict,
        visibility: Mapping[tuple[str, str], Mapping[str, str | None]],
        audiences: Mapping[str, Mapping[str, str]],
    ) -> None:
        """The policy must let every outbound form and CRM write carry what it must carry."""
        grants = _Grants(self.line(root, "audiences"), visibility, audiences)
        self.form_audiences(grants)
        self.activity_audiences(grants)
        self.write_back_audiences(grants)

    def audience_of(self, grants: _Grants, role: str | None, missing: str, **where: str) -> str | None:
        """``role``, the audience the policy names for an outbound thing; ``missing`` reported when it names none."""
        if role is None:
            self.issue(grants.line, missing, **where)
        return role

    def unseen(self, grants: _Grants, where: tuple[str, str, str], message: str) -> None:
        """``message`` unless the role sees the field (``where``: entity, role, field) the outbound thing needs."""
        entity, role, field = where
        if field not in grants.visibility.get((entity, role), {}):
            self.issue(grants.line, message, role=role, entity=entity, field=field)

    def form_audiences(self, grants: _Grants) -> None:
        """Every outbound form has the dictionary's audience, who sees every required widget's source."""
        forms_aud = {**grants.audiences.get("form", {}), **grants.audiences.get("notice", {})}
        for form in self.d.forms.values():
            if form.direction != "crm_to_oa":
                continue
            role = self.audience_of(
                grants,
                forms_aud.get(form.name),
                f"外发表单 {form.name} 没有受众；请在 audiences.form（或 notice）下写 {form.name}: {form.audience}。",
            )
            if role is None:
                continue
            if form.audience and role != form.audience:
                self.issue(
                    grants.line,
                    f"表单 {form.name} 的受众不一致：数据字典写 {form.audience}，权限策略写 {role}；"
                    "请改成同一个角色。",
                    role=role,
                )
            for w in form.widgets:
                if not w.required or not w.source:
                    continue
                head, _, fname = w.source.partition(".")
                entity = form.entity if head == "notice" else head
                if entity:
                    self.unseen(
                        grants,
                        (entity, role, fname),
                        f"表单 {form.name} 的必填控件 {w.id}（{w.name}，来源 {w.source}）对受众 {role} "
                        f"不可见，表单无法填写；请在 entities.{entity}.roles.{role} 的 fields 或 masked 中加入 {fname}。",
                    )

    def activity_audiences(self, grants: _Grants) -> None:
        """Every CRM activity has the dictionary's audience, who sees the fields it copies."""
        writes = grants.audiences.get("crm_write", {})
        for name, activity in self.d.crm_activities.items():
            role = self.audience_of(
                grants,
                writes.get(name),
                f"CRM 活动 {name} 没有受众；请在 audiences.crm_write 下写 {name}: {activity.audience}。",
                entity=name,
            )
            if role is None:
                continue
            if role != activity.audience:
                self.issue(
                    grants.line,
                    f"CRM 活动 {name} 的受众不一致：数据字典写 {activity.audience}，权限策略写 {role}。",
                    role=role,
                    entity=name,
                )
            for prop in activity.properties:
                if prop.kind == "field" and prop.field:
                    self.unseen(
                        grants,
                        (name, role, prop.field),
                        f"CRM 活动 {name} 的属性 {prop.name} 直接取字段 {prop.field}，但它对受众 {role} "
                        f"不可见；请在 entities.{name}.roles.{role} 加入 {prop.field}，或在数据字典中删除该属性。",
                    )

    def write_back_audiences(self, grants: _Grants) -> None:
        """The CRM write audience of an entity sees every field the OA writes back to it."""
        writes = grants.audiences.get("crm_write", {})
        for crm_entity in self.d.entities.values():
            if crm_entity.system != "crm":
                continue
            written = [f.name for f in crm_entity.fields.values() if f.system_of_record == "oa" and f.crm]
            if not written:
                continue
            role = self.audience_of(
                grants,
                writes.get(crm_entity.name),
                f"实体 {crm_entity.name} 有由 OA 回写的字段（{', '.join(written)}），但 audiences.crm_write "
                f"没有 {crm_entity.name}；请指定回写的受众角色。",
                entity=crm_entity.name,
            )
            if role is None:
                continue
            for fname in written:
                self.unseen(
                    grants,
                    (crm_entity.name, role, fname),
                    f"回写字段 {fname} 对 CRM 写入受众 {role} 不可见，回写时会被丢弃；请在 "
                    f"entities.{crm_entity.name}.roles.{role} 加入它。",
                )


def build(path: Path, dictionary: Dictionary) -> Policy:
    """Read and validate one policy file against ``dictionary`` (no cache). Raises :class:`PolicyError`."""
    return build_file(path, _Builder(path, dictionary), PolicyError)


_cache: dict[tuple[Path, int], tuple[tuple[int, int], Policy]] = {}
_lock = threading.Lock()


def load(path: Path | str | None = None, dictionary: Dictionary | None = None) -> Policy:
    """The validated policy (cross-checked with the dictionary), cached by (path, mtime, size, dictionary)."""
    resolved = Path(path) if path is not None else default_path()
    d = dictionary if dictionary is not None else load_dictionary()
    try:
        stat = resolved.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return build(resolved, d)
    key = (resolved, id(d))
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp and hit[1].dictionary is d:
            return hit[1]
    policy = build(resolved, d)
    with _lock:
        if len(_cache) > 16:  # old dictionaries after reloads
            _cache.clear()
        _cache[key] = (stamp, policy)
    return policy
