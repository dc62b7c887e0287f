"""The demo's business day: what people do in the CRM and the OA around each DAG.

``sandbox.demo`` calls ``before(dag_id, ...)`` before it runs a DAG,
``conf(dag_id)`` for the run's conf, and ``after(dag_id, ...)`` once the DAG
succeeded. Each DAG has its own module here (``sandbox/scenario/<dag_id>.py``)
with any of the functions ``before(sims, demo_dir) -> list[str]``,
``conf() -> dict | None`` and ``after(sims, demo_dir) -> list[str]``; the
strings are short lines the demo prints (what was done, what arrived where).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any


def _module(dag_id: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"sandbox.scenario.{dag_id}")
    except ModuleNotFoundError as exc:
        if exc.name == f"sandbox.scenario.{dag_id}":
            return None
        raise


def before(dag_id: str, sims: Any, demo_dir: Path) -> list[str]:
    module = _module(dag_id)
    return list(module.before(sims, demo_dir)) if module and hasattr(module, "before") else []


def conf(dag_id: str) -> dict[str, Any] | None:
    module = _module(dag_id)
    return module.conf() if module and hasattr(module, "conf") else None


def after(dag_id: str, sims: Any, demo_dir: Path) -> list[str]:
    module = _module(dag_id)
    return list(module.after(sims, demo_dir)) if module and hasattr(module, "after") else []
