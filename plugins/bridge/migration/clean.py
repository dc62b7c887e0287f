"""Which values cleaning changed (pure): the "cleaned" column of the migration report.

Cleaning itself is the data dictionary's (``Dictionary.from_crm`` /
``from_oa`` with the format rules of ``bridge.dictionary.formats``: trim,
full-width → half-width, +86 / separators off mobile numbers, lower-case
e-mails, USCC upper-cased and checked, amounts without ¥ and thousands
separators). The migration uses exactly that output, so a migrated record
and the same record read later by a sync have the same snapshot and content
hash. This module only compares the source value with the canonical one to
count what changed, field by field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from bridge.dictionary import Entity, Field

CLEANED_TYPES = frozenset({"string", "text"})
CLEANED_FORMATS = frozenset({"mobile_cn", "phone_cn", "email", "uscc", "cny_amount"})
_PLAIN_AMOUNT = re.compile(r"-?\d+(?:\.\d{1,2})?")
RULE_LABELS = {
    "mobile_cn": "手机号规范化（去 +86、空格、横线，全角转半角）",
    "phone_cn": "电话号码规范化（区号-号码）",
    "email": "邮箱转小写、全角转半角、去空格",
    "uscc": "统一社会信用代码去空格、转大写、全角转半角",
    "cny_amount": "金额去 ¥/元/千分位",
    None: "去除首尾空格（含全角空格）",
}

RawLookup = Callable[[Field], Any]


def crm_raw(obj: Mapping[str, Any]) -> RawLookup:
    """Source value of a field in a HubSpot object (its property)."""
    props = obj.get("properties") if isinstance(obj, Mapping) else None
    props = props if isinstance(props, Mapping) else {}

    def lookup(f: Field) -> Any:
        return props.get(f.crm) if f.crm else None

    return lookup


def oa_raw(instance: Mapping[str, Any]) -> RawLookup:
    """Source value of a field in a Feishu instance detail (widget value or ``@`` attribute)."""
    widgets: dict[str, Any] = {}
    form = instance.get("form") if isinstance(instance, Mapping) else None
    if isinstance(form, str):
        try:
            form = json.loads(form)
        except ValueError:
            form = None
    if isinstance(form, list):
        for w in form:
            if isinstance(w, Mapping) and isinstance(w.get("id"), str):
                widgets.setdefault(w["id"], w.get("value"))

    def lookup(f: Field) -> Any:
        if not f.oa:
            return None
        if f.oa.startswith("@"):
            return instance.get(f.oa[1:]) if isinstance(instance, Mapping) else None
        return widgets.get(f.oa)

    return lookup


def _changed(f: Field, raw: Any, clean: Any) -> bool:
    if not isinstance(raw, str) or clean is None or not raw:
        return False
    if f.format == "cny_amount" or f.type == "amount":
        return raw != raw.strip() or not _PLAIN_AMOUNT.fullmatch(raw.strip())
    return raw != clean


def cleaned_fields(entity: Entity, raw: RawLookup, record: Mapping[str, Any]) -> list[str]:
    """Fields whose canonical value differs from the source value because cleaning changed it.

    Only text fields and the cleanable formats count; enum translation and the
    datetime normal form are mapping, not cleaning. Invalid values (canonical
    ``None``) are problems, not cleaned values.
    """
    out: list[str] = []
    for f in entity.fields.values():
        if f.derive is not None or f.association:
            continue
        cleanable = f.format in CLEANED_FORMATS or (f.format is None and f.type in CLEANED_TYPES)
        if cleanable and _changed(f, raw(f), record.get(f.name)):
            out.append(f.name)
    return out


def rule_label(f: Field) -> str:
    """What cleaning did to a field, for the report."""
    return RULE_LABELS.get(f.format, RULE_LABELS[None])
