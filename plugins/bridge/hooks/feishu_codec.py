"""Feishu's wire formats, as pure functions: instances, forms, query items and approval events.

What the bridge knows about how Feishu spells an approval lives here (and in
``hooks/oa.py``, which sends it): an ``instances/query`` item
(``{approval, group, instance: {code, start_time, end_time}}``), the instance
detail (``instance_code``, ``form`` as a JSON string of widgets, ``timeline``),
the ``[{id, type, value}]`` form a create sends, and the fields of an approval
event (v1 ``event_callback`` and v2 ``schema 2.0`` envelopes). Callers outside
``hooks/`` get typed values (:class:`InstanceRef`, :class:`ApprovalEvent`,
:class:`FormWidgetValue`). A second OA adds a codec like this one beside its hook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

MAX_TIMESTAMP_DIGITS = 15
TENANT_EXTRA = "tenant_key"  # the oa_default Connection extra naming the one tenant whose events are taken


# Instance attributes a dictionary field may read with "@name" (approval v4 instance detail; updated_at is computed).
INSTANCE_ATTRIBUTES = frozenset(
    {
        "instance_code",
        "serial_number",
        "status",
        "user_id",
        "open_id",
        "department_id",
        "start_time",
        "end_time",
        "updated_at",
        "uuid",
        "approval_code",
        "approval_name",
        "reverted",
    }
)
# Widget types the bridge can fill or read, and the field types a widget of a typed kind can carry.
WIDGET_TYPES = frozenset(
    {
        "input",
        "textarea",
        "amount",
        "number",
        "date",
        "dateInterval",
        "radioV2",
        "checkboxV2",
        "contact",
        "department",
    }
)
CHOICE_WIDGET = "radioV2"  # a single choice: its options come from a value map
WIDGET_FIELD_TYPES: dict[str, frozenset[str]] = {
    "amount": frozenset({"amount", "integer"}),
    "number": frozenset({"amount", "integer"}),
    "date": frozenset({"date", "datetime"}),
    CHOICE_WIDGET: frozenset({"enum"}),
}
OaObject = dict[str, Any]  # one Feishu object as sent (an answer's data, an instance detail, a query item)


class FormWidgetValue(TypedDict):
    """One filled widget of a create request's ``form``."""

    id: str
    type: str
    value: object


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """One instance of a query answer: its code and its start/end times (ms; None when absent)."""

    code: str
    start_ms: int | None
    end_ms: int | None


class FormError(ValueError):
    """An instance's ``form`` the bridge cannot read. ``kind``: missing / too_long / not_json / not_a_list;
    ``detail``: the length or the type name met (for the staff message)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class EnvelopeError(ValueError):
    """A delivery that is neither a v1 ``event_callback`` nor a v2 ``schema 2.0`` event envelope."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """A ``url_verification`` delivery: Feishu checks the request URL by asking for ``challenge`` back."""

    token: object
    challenge: object


@dataclass(frozen=True, slots=True)
class ApprovalEvent:
    """The fields of one event delivery the receiver checks and forwards."""

    token: object  # the app's verification token, as sent
    app_id: object
    tenant: object
    event_type: object
    delivery_id: object  # v1 uuid / v2 header.event_id
    instance_code: object
    approval_code: object
    times: tuple[object, ...]  # candidate event times (ms), best first


def query_item_ok(item: object) -> bool:
    """Whether an ``instances/query`` item has the shape the bridge reads (an instance with a code)."""
    if not isinstance(item, dict):
        return False
    instance = item.get("instance")
    return isinstance(instance, dict) and isinstance(instance.get("code"), str)


def query_item_code(item: Mapping[str, object]) -> str:
    """The instance code of a well-formed query item (see :func:`query_item_ok`)."""
    instance = item["instance"]
    assert isinstance(instance, Mapping)
    return str(instance["code"])


def instance_ref(item: Mapping[str, object]) -> InstanceRef:
    """The typed reference of a well-formed query item."""
    raw = item.get("instance")
    instance: Mapping[str, object] = raw if isinstance(raw, Mapping) else {}
    end = str(instance.get("end_time") or "0")
    end_ms = int(end) if end.isdigit() and int(end) > 0 else None
    return InstanceRef(str(instance.get("code")), instance_start_ms(instance), end_ms)


def instance_start_ms(instance: Mapping[str, object]) -> int | None:
    """When an instance (a query item's or a detail) was started, in ms; None when absent or malformed."""
    start = instance.get("start_time")
    return int(start) if isinstance(start, str | int) and str(start).isdigit() else None


def looks_like_instance(doc: object) -> bool:
    """Whether a saved JSON document is an instance detail (it has the form or the instance's code)."""
    return isinstance(doc, dict) and ("form" in doc or "instance_code" in doc)


def unwrap_answer(doc: object) -> object:
    """An instance detail saved with Feishu's ``{code, msg, data}`` answer envelope: its ``data``; any other
    document as it is."""
    data = doc.get("data") if isinstance(doc, dict) else None
    return data if looks_like_instance(data) else doc


def instance_code(instance: Mapping[str, object]) -> object:
    """The code of an instance detail (``GET /instances/{code}``), as sent."""
    return instance.get("instance_code")


def instance_applicant(instance: Mapping[str, object]) -> str:
    """The applicant's user id of an instance detail ("" when absent)."""
    return str(instance.get("user_id") or "")


def instance_form(instance: Mapping[str, object]) -> object:
    """The ``form`` of an instance detail, as sent (a JSON string of widgets)."""
    return instance.get("form")


def instance_attribute(instance: Mapping[str, object], name: str) -> object:
    """An attribute of an instance detail (``@name`` in the dictionary); ``updated_at`` is computed."""
    if name == "updated_at":
        return instance_updated_ms(instance)
    return instance.get(name)


def instance_updated_ms(instance: Mapping[str, object]) -> int | None:
    """The latest of start_time, end_time and the timeline's create_time (Feishu has no update time)."""
    candidates = [instance.get("start_time"), instance.get("end_time")]
    timeline = instance.get("timeline")
    if isinstance(timeline, list):
        candidates.extend(t.get("create_time") for t in timeline if isinstance(t, Mapping))
    best: int | None = None
    for raw in candidates:
        if isinstance(raw, bool):
            continue
        if isinstance(raw, str) and raw.isdigit() and len(raw) <= MAX_TIMESTAMP_DIGITS:
            raw = int(raw)
        if isinstance(raw, int) and raw > 0 and (best is None or raw > best):
            best = raw
    return best


def decode_form(form: object, max_chars: int) -> dict[str, object]:
    """Widget values by widget id (and ``custom_id``) of an instance's ``form``; :class:`FormError` when
    the form is absent or not a JSON list of widgets."""
    if form is None:
        raise FormError("missing")
    if isinstance(form, str):
        if len(form) > max_chars:
            raise FormError("too_long", str(len(form)))
        try:
            form = json.loads(form)
        except (ValueError, RecursionError):
            raise FormError("not_json") from None
    if not isinstance(form, list):
        raise FormError("not_a_list", type(form).__name__)
    values: dict[str, object] = {}
    for widget in form:
        if not isinstance(widget, Mapping):
            continue
        for key in ("id", "custom_id"):
            wid = widget.get(key)
            if isinstance(wid, str) and wid and wid not in values:
                values[wid] = widget.get("value")
    return values


def form_entry(widget_id: str, widget_type: str, value: object) -> FormWidgetValue:
    return {"id": widget_id, "type": widget_type, "value": value}


def encode_form(form: Sequence[Mapping[str, object]] | str) -> str:
    """The ``form`` of a create request: Feishu wants the widget list as a compact JSON string."""
    return (
        form if isinstance(form, str) else json.dumps(list(form), ensure_ascii=False, separators=(",", ":"))
    )


@dataclass(frozen=True, slots=True)
class InstanceComment:
    """One comment on an approval instance (approval v4 ``instances/{id}/comments``): its id, the text of its
    ``content`` (a JSON string ``{"text", "files"}``), who wrote it and when (ms; None when absent)."""

    comment_id: str
    text: str
    commentator: str
    created_ms: int | None
    deleted: bool = False


def comment_content(text: str) -> str:
    """The ``content`` of a create-comment request: Feishu wants ``{"text": …, "files": […]}`` as a JSON string."""
    return json.dumps({"text": text, "files": []}, ensure_ascii=False, separators=(",", ":"))


def comment_of(item: Mapping[str, object]) -> InstanceComment:
    """One item of the comment list; the text read from its JSON ``content`` (kept as is when not JSON)."""
    raw = item.get("content")
    text = raw if isinstance(raw, str) else ""
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        text = doc["text"]
    created = item.get("create_time")
    return InstanceComment(
        comment_id=str(item.get("id") or ""),
        text=text,
        commentator=str(item.get("commentator") or ""),
        created_ms=int(created) if isinstance(created, str | int) and str(created).isdigit() else None,
        deleted=item.get("is_delete") == 1,
    )


def challenge_of(doc: Mapping[str, object]) -> Challenge | None:
    """The challenge of a ``url_verification`` delivery; None for any other delivery."""
    if doc.get("type") != "url_verification":
        return None
    return Challenge(doc.get("token"), doc.get("challenge"))


def approval_event(doc: Mapping[str, object]) -> ApprovalEvent:
    """The fields of an event envelope (v2 ``schema 2.0`` or v1 ``event_callback``); :class:`EnvelopeError`
    when it is neither, or has no event object."""
    event = doc.get("event")
    if not isinstance(event, dict):
        raise EnvelopeError("no event object")
    codes = event.get("instance_code"), event.get("approval_code")
    if doc.get("schema") == "2.0":
        raw = doc.get("header")
        header: Mapping[str, object] = raw if isinstance(raw, dict) else {}
        return ApprovalEvent(
            header.get("token"),
            header.get("app_id"),
            header.get("tenant_key"),
            header.get("event_type"),
            header.get("event_id"),
            *codes,
            times=(event.get("operate_time"), event.get("instance_operate_time"), header.get("create_time")),
        )
    if doc.get("type") == "event_callback":
        return ApprovalEvent(
            doc.get("token"),
            event.get("app_id"),
            event.get("tenant_key"),
            event.get("type"),
            doc.get("uuid"),
            *codes,
            times=(event.get("operate_time"), event.get("instance_operate_time"), None),
        )
    raise EnvelopeError("neither a v1 event_callback nor a v2 schema 2.0 envelope")
