"""The ``data_health`` section of ``include/settings.yaml``, validated, with defaults.

Every key can be overridden per deployment with ``BRIDGE__DATA_HEALTH__<KEY>``
(``bridge.settings``). Thresholds live here, not in code, so that a data owner
can tighten or relax a check without a release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge import runkinds
from bridge import settings as bridge_settings

# Sync directions: the keys of freshness_max_minutes (their run kinds are in bridge.runkinds).
SYNC_DIRECTIONS = tuple(runkinds.SYNC_BY_DIRECTION)
DEFAULT_FRESHNESS_MINUTES = 60
DEFAULT_BACKLOG_MAX = 20


class HealthSettingsError(ValueError):
    """A ``data_health`` setting that cannot be used; the message names the key."""


@dataclass(frozen=True)
class HealthSettings:
    """What the data-health run needs to know besides the dictionary."""

    max_rows_per_suite: int = 0  # 0 = every row; else a deterministic sample of about this many rows
    notify: bool = True
    failing_ids_kept: int = 50  # failing record ids kept per check (health_result.failing_ids)
    notice_examples: int = 10  # example ids per check in an e-mail
    freshness_max_minutes: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(SYNC_DIRECTIONS, DEFAULT_FRESHNESS_MINUTES)
    )
    backlog_max: Mapping[str, int] = field(default_factory=lambda: {"default": DEFAULT_BACKLOG_MAX})
    snapshot_batch: int = 5000
    attachment_quarantine_days: int = 7  # a refused file left open longer fails attachment.quarantine.age
    ops_recipients: tuple[str, ...] = ()  # who hears about stale syncs (system administrators)

    def freshness_limit(self, direction: str) -> int:
        return int(self.freshness_max_minutes.get(direction, DEFAULT_FRESHNESS_MINUTES))

    def backlog_limit(self, reason: str) -> int:
        return int(self.backlog_max.get(reason, self.backlog_max.get("default", DEFAULT_BACKLOG_MAX)))


def _int(raw: Mapping[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HealthSettingsError(
            f"include/settings.yaml data_health.{key}: 应为不小于 {minimum} 的整数，现在是 {value!r}"
        )
    return value


def _int_map(raw: Mapping[str, Any], key: str, default: Mapping[str, int]) -> dict[str, int]:
    value = raw.get(key)
    if value is None:
        return dict(default)
    if not isinstance(value, Mapping):
        raise HealthSettingsError(f"include/settings.yaml data_health.{key}: 应为映射（名称: 整数），现在是 {value!r}")
    merged = dict(default)
    for name, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise HealthSettingsError(
                f"include/settings.yaml data_health.{key}.{name}: 应为不小于 0 的整数，现在是 {limit!r}"
            )
        merged[str(name)] = limit
    return merged


def from_mapping(raw: Mapping[str, Any] | None) -> HealthSettings:
    """Settings from the ``data_health`` section (a mapping); missing keys take the defaults."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise HealthSettingsError("include/settings.yaml data_health: 应为映射")
    defaults = HealthSettings()
    notify = raw.get("notify", defaults.notify)
    if not isinstance(notify, bool):
        raise HealthSettingsError(f"include/settings.yaml data_health.notify: 应为 true 或 false，现在是 {notify!r}")
    ops = raw.get("ops_recipients") or []
    if isinstance(ops, str):
        ops = [ops]
    if not isinstance(ops, list) or not all(isinstance(a, str) and "@" in a for a in ops):
        raise HealthSettingsError(f"include/settings.yaml data_health.ops_recipients: 应为邮箱地址列表，现在是 {ops!r}")
    return HealthSettings(
        ops_recipients=tuple(ops),
        max_rows_per_suite=_int(raw, "max_rows_per_suite", defaults.max_rows_per_suite),
        notify=notify,
        failing_ids_kept=_int(raw, "failing_ids_kept", defaults.failing_ids_kept, minimum=1),
        notice_examples=_int(raw, "notice_examples", defaults.notice_examples, minimum=1),
        freshness_max_minutes=_int_map(raw, "freshness_max_minutes", defaults.freshness_max_minutes),
        backlog_max=_int_map(raw, "backlog_max", defaults.backlog_max),
        snapshot_batch=_int(raw, "snapshot_batch", defaults.snapshot_batch, minimum=100),
        attachment_quarantine_days=_int(raw, "attachment_quarantine_days", defaults.attachment_quarantine_days),
    )


def load() -> HealthSettings:
    """The deployment's data-health settings (``include/settings.yaml`` + overrides)."""
    return from_mapping(bridge_settings.load().get("data_health"))
