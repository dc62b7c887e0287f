"""What the journey read mixins share: the hook surface they use, and small total readers of vendor JSON
(a wrong type reads as "absent", never as an exception, so one odd record does not stop a page)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar

from bridge.hooks._base import to_ms
from bridge.hooks._http import Answer

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class PagedCalls(Protocol):
    """The part of a vendor hook a read mixin calls (structural, so a mixin does not import its hook)."""

    def call(self, method: str, template: str, **kw: Any) -> Answer: ...

    def _cursor_pages(
        self, fetch: Callable[[str | None], tuple[list[T], str | None]], key: Callable[[T], K], what: str
    ) -> Iterator[list[T]]: ...


def text(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value != "" else None


def lower(value: object) -> str | None:
    """:func:`text` in lower case (vendor enum values as the bridge spells them)."""
    out = text(value)
    return None if out is None else out.lower()


def part(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A nested object, or an empty one when it is missing or not an object."""
    value = obj.get(name)
    return value if isinstance(value, dict) else {}


def decimal(value: object) -> Decimal | None:
    """A finite decimal from a number or its text (ratings, scores, budgets), else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        return None
    return out if out.is_finite() else None


def epoch_ms(value: object) -> int | None:
    """Epoch milliseconds sent as a number or as digits (Feishu's int64 strings), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def iso_epoch_ms(value: object) -> int | None:
    """Epoch milliseconds of an ISO 8601 time with an offset (HubSpot's ``…Z``), else None: the watermark
    a caller keeps is in ms, as for every other incremental read."""
    raw = text(value)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return to_ms(moment, "time")
