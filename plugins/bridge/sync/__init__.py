"""The sync engine: CRM → OA (:mod:`.crm_to_oa`) and OA → CRM (:mod:`.oa_to_crm`).

Layers: the DAG files call :mod:`.tasks` (Airflow context in, counts out); a
task calls a direction's steps, each a small module of its package with the
direction's exactly-once reasoning and its pure decisions (``decide``); the
steps run in the shared :mod:`.frame` (run object, lease, due changes, defer,
quarantine, audit, summary) and reach the vendors only through
:mod:`bridge.hooks` and the hub only through :mod:`bridge.hub.store`.
"""

from __future__ import annotations
