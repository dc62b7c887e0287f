"""Lines the layers above the hooks add to a Connection test answer (the hooks cannot read the hub).

The composition root — the Airflow plugin, ``plugins/bridge_plugin.py`` — registers
``"module:function"`` targets per system; they are imported only when a Test
runs, so registering costs nothing at start-up. A function takes the hook and
returns lines (Chinese: the Connections page shows them). A note that cannot be
built says so in one line; it never turns a passing Test into a failing one.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

_TARGETS: dict[str, list[str]] = {}


def register(system: str, target: str) -> None:
    """Add ``"package.module:function"`` to the Test answer of ``system`` (``crm`` / ``oa``); idempotent."""
    if ":" not in target:
        raise ValueError(f"connection note target {target!r} must read 'module:function'")
    targets = _TARGETS.setdefault(system, [])
    if target not in targets:
        targets.append(target)


def unregister(system: str, target: str) -> None:
    if target in _TARGETS.get(system, []):
        _TARGETS[system].remove(target)


def notes(system: str, hook: Any) -> list[str]:
    lines: list[str] = []
    for target in _TARGETS.get(system, []):
        module, _, name = target.partition(":")
        try:
            lines.extend(str(line) for line in getattr(importlib.import_module(module), name)(hook))
        except Exception as exc:
            log.info("connection note %s failed: %s", target, type(exc).__name__)
            lines.append(f"（附加检查 {name} 无法完成：{type(exc).__name__}）")
    return lines


def with_notes(system: str, hook: Any, message: str) -> str:
    """The Test's success message followed by the registered notes, one per line."""
    return "\n".join([message, *notes(system, hook)])
