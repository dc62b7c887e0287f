"""Validation of an instance ``form`` (a JSON *string* of widget values).

Pure functions: ``parse_form`` checks the string against the definition the
way Feishu does for the widget types the bridge uses and returns the widgets
as the instance detail shows them (id, name, type, value). Feishu does not
enforce required widgets on create (its FAQ), but a widget that is sent must
carry a ``value`` of the right shape; the error names the widget
("控件值不合法或者为空。控件=<id>", as the vendor's message does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.oa.definitions import Definition

TEXT_TYPES = {"input", "textarea"}
NUMBER_TYPES = {"amount", "number", "formula"}
DATE_TYPES = {"date"}
CHOICE_TYPES = {"radio", "radioV2"}
# File widgets and the upload ``type`` their codes must have (Feishu's upload doc: "文件类型（image 或
# attachment）取决于审批定义表单控件中的具体类型，请按定义使用").
FILE_TYPES = {"attachment": "attachment", "attachmentV2": "attachment", "image": "image", "imageV2": "image"}
FileKind = Callable[[str], str | None]  # uploaded file code -> "attachment" | "image" | None (unknown)


class FormError(ValueError):
    """The form is not acceptable; ``str(err)`` is the detail for the 1390001 message."""


def _bad_value(widget_id: str) -> FormError:
    return FormError(f"控件值不合法或者为空。控件={widget_id}")


def parse_rfc3339(value: str) -> datetime:
    """RFC 3339 with an offset (``2019-10-01T08:12:01+08:00`` or ``...Z``)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None or "T" not in value.upper():
        raise ValueError("no offset")
    return dt


MAX_NUMBER = 1e15  # beyond any amount a form carries; also keeps values inside JSON's safe range


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) and abs(value) < MAX_NUMBER else None
    if isinstance(value, str):
        try:
            num = float(value.strip())
        except ValueError:
            return None
        if not math.isfinite(num) or abs(num) >= MAX_NUMBER:
            return None
        return int(num) if num.is_integer() and "." not in value and "e" not in value.lower() else num
    return None


def _text(value: Any) -> bool:
    """A string that can be stored: no lone surrogates (``"\\ud800"`` escapes decode to them)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_form(raw: Any, definition: Definition, file_kind: FileKind | None = None) -> list[dict[str, Any]]:
    """Widgets of a create/resubmit ``form``, normalised; raises ``FormError``. ``file_kind`` resolves the
    codes of attachment and image widgets (without it any code is taken)."""
    if not isinstance(raw, str):
        raise FormError("form must be a JSON array encoded as a string")
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise FormError(f"form is not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(items, list):
        raise FormError("form must be a JSON array of widget values")
    widgets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise FormError(f"form[{n}] has no widget id")
        wid = item["id"]
        widget = definition.widget(wid)
        if widget is None:
            raise FormError(f"控件不存在。控件={wid}")
        if wid in seen:
            raise FormError(f"控件重复。控件={wid}")
        seen.add(wid)
        if "type" in item and item["type"] != widget.type:
            raise FormError(f"控件类型不匹配。控件={wid}，应为 {widget.type}")
        if "value" not in item:
            raise _bad_value(wid)
        widgets.append({"id": wid, "name": widget.name, "type": widget.type,
                        "value": _value(widget.type, item["value"], wid, widget.options, file_kind)})
    return widgets


def _file_codes(wtype: str, value: Any, wid: str, file_kind: FileKind | None) -> list[str]:
    """An attachment / image widget's value: a non-empty array of uploaded file codes of the widget's kind."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and _text(v) for v in value):
        raise _bad_value(wid)
    if file_kind is not None and any(file_kind(code) != FILE_TYPES[wtype] for code in value):
        raise _bad_value(wid)
    return list(value)


def _value(wtype: str, value: Any, wid: str, options: tuple[Any, ...], file_kind: FileKind | None = None) -> Any:
    if wtype in FILE_TYPES:
        return _file_codes(wtype, value, wid, file_kind)
    if wtype in TEXT_TYPES:
        if not _text(value):
            raise _bad_value(wid)
        return value
    if wtype in NUMBER_TYPES:
        num = _number(value)
        if num is None:
            raise _bad_value(wid)
        return num
    if wtype in DATE_TYPES:
        if not _text(value):
            raise _bad_value(wid)
        try:
            parse_rfc3339(value)
        except ValueError as exc:
            raise _bad_value(wid) from exc
        return value
    if wtype in CHOICE_TYPES:
        if not _text(value):
            raise _bad_value(wid)
        if options:
            for opt in options:
                if value in (opt.key, opt.text):
                    return opt.text
            raise _bad_value(wid)
        return value
    return value  # widget types the bridge does not use: stored as sent
