"""What a verified event becomes, and why a delivery was refused."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

# Redis pub/sub channels watched by the sync DAGs (dags/*_sync.py spell them literally).
CHANNELS = {"crm": "bridge.events.crm", "oa": "bridge.events.oa"}


@dataclass(frozen=True)
class WakeMessage:
    """The only thing a verified event enqueues: which record moved, when, and the delivery id."""

    source: str  # "crm" | "oa"
    record_type: str  # deal / company / contact / approval_instance
    record_id: str
    event_time: str  # ISO 8601, UTC
    delivery_id: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def channel(self) -> str:
        return CHANNELS[self.source]


class Refused(Exception):
    """A delivery that must not be trusted: HTTP status and a short machine reason (never the payload)."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}: {detail}" if detail else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail


def iso_from_ms(ms: int | float) -> str:
    return datetime.fromtimestamp(float(ms) / 1000.0, UTC).isoformat(timespec="milliseconds")


def check_window(now: float, stamp: float, max_age: float, max_future: float, unit: str = "s") -> None:
    """Refuse (401) a request timestamp older than ``max_age`` or further than ``max_future`` ahead."""
    scale = 1000 if unit == "ms" else 1
    if now - stamp > max_age:
        raise Refused(
            401, "stale", f"timestamp {int((now - stamp) / scale)} s old (max {int(max_age / scale)} s)"
        )
    if stamp - now > max_future:
        raise Refused(401, "future", f"timestamp {int((stamp - now) / scale)} s in the future")
