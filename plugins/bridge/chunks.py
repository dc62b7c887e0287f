"""Cutting a list of ids or rows into fixed-size pieces: one query, one vendor call or one statement each.

Every place that bounds the size of an ``IN (...)`` list, a batch call or an executemany cuts the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive pieces of at most ``size``, in order (nothing for an empty sequence)."""
    if size < 1:
        raise ValueError(f"a chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
