"""The sync engine: CRM → OA (``crm_to_oa``) and OA → CRM (``oa_to_crm``).

Each direction is a few functions that take hooks, a hub engine, a
:class:`~bridge.context.RunContext`, settings and ``now`` as arguments, so the
DAG tasks are one call each and the tests call the same functions without
Airflow. What both directions share (settings access, run summaries,
quarantine and audit helpers, asset names, idempotency uuids) is in
:mod:`bridge.sync.common`.
"""

from __future__ import annotations
