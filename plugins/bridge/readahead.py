"""Read ahead: run a producer (vendor pages) in one thread while the caller works on what it produced.

Bulk extracts spend their time half waiting on the vendor and half mapping and
writing; reading the next page while the current one is written overlaps the two.
The producer runs in ONE thread, so a hook is never used by two threads at once
(the caller must not use the same hook while it iterates). The queue is bounded
(``depth`` items), so memory stays that of a few pages. An exception in the
producer is raised in the caller at the point it would have been raised without
the thread; closing the iterator early (a ``break``, an exception in the caller)
stops the producer after its current item.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read_ahead(produce: Callable[[], Iterable[T]], depth: int = 2, name: str = "bridge-read-ahead") -> Iterator[T]:
    """Items of ``produce()``, produced in a background thread at most ``depth`` items ahead."""
    items: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
        except BaseException as exc:  # handed to the caller, raised there
            put(_Failed(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
