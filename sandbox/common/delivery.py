"""Delivery faults of the simulators' event senders (OA approval events, CRM webhooks), on demand.

``drop`` (probability per delivery), ``duplicate`` (copies of each delivery),
``reorder`` (deliveries held in groups of this size and released shuffled).
Seeded, so a test that asks for faults gets the same ones every time.
"""

from __future__ import annotations

import queue
import random
import time
from collections import Counter
from typing import Any


class FaultyOutbox:
    """A queue of deliveries for a sender thread, with the faults applied on the way in."""

    def __init__(self, stats: Counter[str]) -> None:
        self.stats = stats
        self.queue: queue.Queue[Any] = queue.Queue()
        self.drop = 0.0
        self.duplicate = 1
        self.reorder = 0
        self._held: list[Any] = []
        self._rng = random.Random(0)

    def configure(self, drop: float | None = None, duplicate: int | None = None, reorder: int | None = None,
                  seed: int | None = None) -> None:
        drop = self.drop if drop is None else float(drop)
        duplicate = self.duplicate if duplicate is None else int(duplicate)
        if not 0.0 <= drop <= 1.0 or duplicate < 1:
            raise ValueError("drop must be within 0..1 and duplicate >= 1")
        self.drop, self.duplicate = drop, duplicate
        self.reorder = self.reorder if reorder is None else int(reorder)
        if seed is not None:
            self._rng.seed(int(seed))

    def reset(self) -> None:
        self.drop, self.duplicate, self.reorder, self._held = 0.0, 1, 0, []

    def put(self, item: Any, copy: Any = None) -> None:
        """Queue one delivery (``copy(item)`` makes each duplicate; default: the same object)."""
        if self._rng.random() < self.drop:
            self.stats["dropped"] += 1
            return
        copies = [copy(item) if copy else item for _ in range(self.duplicate)]
        self.stats["duplicated"] += self.duplicate - 1
        if self.reorder <= 1:
            for one in copies:
                self.queue.put(one)
            return
        self._held.extend(copies)
        if len(self._held) >= self.reorder:
            self.release_held()

    def release_held(self) -> None:
        """Send the held (reordered) deliveries now, shuffled."""
        held, self._held = self._held, []
        self._rng.shuffle(held)
        self.stats["reordered"] += len(held)
        for one in held:
            self.queue.put(one)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        self.release_held()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False
