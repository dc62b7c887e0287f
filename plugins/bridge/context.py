"""Who is acting and in which run: stamped on audit entries and run summaries.

A task builds it once from the Airflow context; the CLI and tests use
:meth:`RunContext.local`. The principal is the service identity that performs
the writes in the other systems (e.g. ``bridge-service@<client id>``), not a
person: people appear as ``released_by`` and similar explicit arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

DEFAULT_PRINCIPAL = "bridge-service"


def configured_principal() -> str:
    """The service principal: ``BRIDGE_PRINCIPAL`` or settings ``audit.principal``, else the default."""
    env = os.environ.get("BRIDGE_PRINCIPAL")
    if env:
        return env
    from bridge import settings

    try:
        value = (settings.load().get("audit") or {}).get("principal")
    except settings.SettingsError:
        value = None
    return str(value) if value else DEFAULT_PRINCIPAL


@dataclass(frozen=True)
class RunContext:
    """The DAG run, task try and principal behind a write."""

    dag_id: str | None
    run_id: str | None
    task_id: str | None
    try_number: int | None
    principal: str

    @classmethod
    def from_airflow(cls, context: Mapping[str, Any], principal: str | None = None) -> RunContext:
        """From the task context of Airflow 3 (``get_current_context()`` or ``**context``)."""
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None)
        if dag_id is None and context.get("dag") is not None:
            dag_id = getattr(context["dag"], "dag_id", None)
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
        task_id = getattr(ti, "task_id", None)
        if task_id is None and context.get("task") is not None:
            task_id = getattr(context["task"], "task_id", None)
        try_number = getattr(ti, "try_number", None)
        return cls(
            dag_id=str(dag_id) if dag_id is not None else None,
            run_id=str(run_id) if run_id is not None else None,
            task_id=str(task_id) if task_id is not None else None,
            try_number=int(try_number) if try_number is not None else None,
            principal=principal or configured_principal(),
        )

    @classmethod
    def local(cls, principal: str = "bridge-cli", dag_id: str = "local") -> RunContext:
        """A context for the CLI and tests: a fresh run id per call, no task."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return cls(
            dag_id=dag_id, run_id=f"local__{stamp}", task_id=None, try_number=None, principal=principal
        )

    def with_principal(self, principal: str) -> RunContext:
        """The same run, acting as another service principal (e.g. per vendor connection)."""
        return replace(self, principal=principal)
