"""OA → CRM load: a CRM outage stops the load (and defers its changes); a record's refusal does not."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from bridge.hooks.errors import VendorError

T = TypeVar("T")


class Unavailable(Exception):
    """The CRM stayed unavailable through the hook's retries."""

    def __init__(self, error: VendorError) -> None:
        super().__init__(str(error))
        self.error = error


def vendor_call(call: Callable[[], T]) -> T:
    """A hook call whose exhausted retries (outage, 429 storm) stop the load; record-level errors are outcomes."""
    try:
        return call()
    except VendorError as exc:
        raise Unavailable(exc) from exc


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
