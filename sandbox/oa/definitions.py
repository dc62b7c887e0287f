"""Approval definitions (审批定义) of the simulated tenant.

The widget lists are read at start-up from the ``forms:`` section of the data
dictionary (``include/dictionary.yaml``), so the simulator's forms and the
bridge's field maps cannot drift apart; single-choice widgets (radioV2) get
their options from the value map the widget names (the ``oa`` labels).
Approval codes are ``sandbox.common.world.APPROVAL_CODES``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.common.world import APPROVAL_CODES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DICTIONARY = ROOT / "include" / "dictionary.yaml"

# The tenant's forms carry an attachment and an image widget (Feishu's 附件 / 图片 controls). The data
# dictionary does not list them yet (its form checks do not know these types), so the simulator adds them
# to every definition that has no widget of that type.
FILE_WIDGETS = (("attachments", "attachmentV2", "附件"), ("images", "image", "图片"))

# Chinese names of the six definitions (the dictionary's form labels must agree).
APPROVAL_NAMES = {
    "project_initiation": "立项申请",
    "expense_claim": "费用报销",
    "travel_request": "差旅申请",
    "visit_plan": "客户拜访计划",
    "contract_amount_notice": "合同金额变更通知",
    "deal_void_notice": "商机作废通知",
}


@dataclass(frozen=True)
class Option:
    key: str  # Feishu option value (what the API may send instead of the text)
    text: str  # what the instance detail shows


@dataclass(frozen=True)
class Widget:
    id: str
    type: str
    name: str
    options: tuple[Option, ...] = ()
    required: bool = False  # shown in the definition; Feishu does not enforce it on API creates


@dataclass(frozen=True)
class Definition:
    key: str  # glossary name, e.g. expense_claim
    code: str  # approval_code
    name: str  # 费用报销
    widgets: tuple[Widget, ...]

    def widget(self, widget_id: str) -> Widget | None:
        return next((w for w in self.widgets if w.id == widget_id), None)

    def node_id(self, node: str) -> str:
        return hashlib.md5(f"{self.code}/{node}".encode()).hexdigest()  # ruff: ignore[hashlib-insecure-hash-function] - an id, not security

    def form_json(self) -> str:
        """The definition's ``form`` as Feishu returns it: a JSON string of widgets."""
        items: list[dict[str, Any]] = []
        for w in self.widgets:
            item: dict[str, Any] = {"id": w.id, "custom_id": w.id, "name": w.name, "type": w.type,
                                    "printable": True, "required": w.required, "visible": True}
            if w.options:
                item["option"] = [{"value": o.key, "text": o.text} for o in w.options]
            items.append(item)
        return json.dumps(items, ensure_ascii=False, separators=(",", ":"))

    def api_body(self) -> dict[str, Any]:
        """``data`` of GET /open-apis/approval/v4/approvals/{approval_code}."""
        nodes = [("START", "提交"), ("APPROVAL", "审批"), ("END", "结束")]
        return {
            "approval_name": self.name,
            "status": "ACTIVE",
            "form": self.form_json(),
            "node_list": [
                {"name": name, "need_approver": False, "node_id": self.node_id(node), "custom_node_id": node.lower(),
                 "node_type": "AND", "approver_chosen_multi": False, "approver_chosen_range": [],
                 "require_signature": False}
                for node, name in nodes
            ],
            "viewers": [{"type": "TENANT"}],
            "approval_admin_ids": [],
            "form_widget_relation": "",
        }


class DefinitionError(ValueError):
    """The dictionary's forms section cannot be turned into definitions."""


def load_definitions(path: Path = DEFAULT_DICTIONARY) -> dict[str, Definition]:
    """Definitions by approval code, from the dictionary's ``forms`` and ``value_maps``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: cannot read the data dictionary ({exc}); pass --dictionary PATH") from exc
    forms = (doc or {}).get("forms") or {}
    value_maps = (doc or {}).get("value_maps") or {}
    entities = (doc or {}).get("entities") or {}
    result: dict[str, Definition] = {}
    for key, code in APPROVAL_CODES.items():
        form = forms.get(key)
        if not form or not form.get("widgets"):
            raise DefinitionError(f"{path}: forms.{key} is missing or has no widgets")
        widgets = []
        for raw in form["widgets"]:
            for field in ("id", "type", "name"):
                if not raw.get(field):
                    raise DefinitionError(f"{path}: forms.{key}.widgets: a widget has no {field}")
            options: tuple[Option, ...] = ()
            if raw["type"] in ("radio", "radioV2") and raw.get("value_map"):
                vmap = value_maps.get(raw["value_map"]) or {}
                texts = [v.get("oa") or v.get("label") for v in vmap.get("values", [])]
                options = tuple(Option(key=f"{raw['id']}-{n + 1}", text=str(t)) for n, t in enumerate(texts) if t)
            # A widget is required when it says so, else when the form entity's field read from it is.
            fields = (entities.get(key) or {}).get("fields") or {}
            field_required = any(f.get("oa") == raw["id"] and f.get("required") for f in fields.values())
            required = bool(raw.get("required", field_required))
            widgets.append(Widget(id=str(raw["id"]), type=str(raw["type"]), name=str(raw["name"]), options=options,
                                  required=required))
        have = {w.type for w in widgets}
        widgets.extend(Widget(id=wid, type=wtype, name=name) for wid, wtype, name in FILE_WIDGETS if wtype not in have)
        result[code] = Definition(key=key, code=code, name=APPROVAL_NAMES[key], widgets=tuple(widgets))
    return result
