"""A second wake-up of ``crm_to_oa_sync`` when a changed record's quiet window should have passed.

The webhook of an edit wakes the DAG at once, but the debounce makes that run
hold the change until the record has been quiet for ``debounce.quiet_seconds``.
Without a second wake-up the change would wait for the next scheduled minute
that polls (up to 60 s more). So the receiver remembers, per record, when its
last event's quiet window ends (+ a few seconds for the extract that staged
it) and publishes one more wake message then. Each new event of the record
moves its time; a record edited without pause reaches the debounce's maximum
delay, which the every-minute gate covers (it polls when changes are due).
Nothing here decides anything: the run still reads the hub's queue.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from bridge.events.model import WakeMessage


class DueWakes:
    def __init__(self, after_s: float, capacity: int = 10_000) -> None:
        self.after_s = after_s
        self.capacity = capacity
        self._due: dict[str, tuple[float, WakeMessage]] = {}
        self._lock = threading.Lock()

    def note(self, message: WakeMessage, now: float) -> None:
        if message.source != "crm":
            return
        with self._lock:
            self._due[f"{message.record_type}:{message.record_id}"] = (now + self.after_s, message)
            if len(self._due) > self.capacity:  # bounded: forget the soonest (the gate's minute covers it)
                del self._due[min(self._due, key=lambda k: self._due[k][0])]

    def pop_due(self, now: float) -> WakeMessage | None:
        """One wake message if any record's window has passed (one run handles every due change)."""
        with self._lock:
            due = [k for k, (at, _) in self._due.items() if at <= now]
            if not due:
                return None
            first = self._due[due[0]][1]
            for key in due:
                del self._due[key]
        return replace(first, delivery_id=f"due:{first.delivery_id}:{len(due)}")

    def __len__(self) -> int:
        return len(self._due)
