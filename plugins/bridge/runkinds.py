"""Run kinds: the one spelling of ``run_summary.kind`` that every writer and every reader uses.

A run kind names what a row of ``run_summary`` summarises. It is the id of
the DAG that writes it, so a run summary, the Airflow run and the log line
all say the same word. Writers pass these constants to ``store.start_run`` /
``sync.frame.store_run_summary``; readers (data health, the daily report, the
bridge's pages) select with them too, never with a literal.

Who writes ``run_summary`` today: the two syncs (one row per DAG run) and the
data-health run. The history migration keeps its own table
(``migration_run``) and the daily report its own (``report_run``); they write
no run summary.

The direction names ``crm_to_oa`` / ``oa_to_crm`` are another thing: they key
watermarks, pending changes, quarantine entries and settings. Map a
direction to its run kind with :data:`SYNC_BY_DIRECTION`.

These spellings are the ones the writers have always used, so existing hubs
need no data migration. (Until issue 14 the readers spelled the sync kinds by
direction, ``crm_to_oa``, a spelling no writer ever stored; nothing reads it
now.)
"""

from __future__ import annotations

from typing import Final

CRM_TO_OA: Final = "crm_to_oa_sync"
OA_TO_CRM: Final = "oa_to_crm_sync"
DATA_HEALTH: Final = "data_health"
# The customer-journey sources staged into the hub (issue 20): read only, nothing written to a vendor, so
# not a sync direction (no lag, no pending changes); its quarantine direction is "journey".
JOURNEY: Final = "journey_sync"

ALL: Final = (CRM_TO_OA, OA_TO_CRM, DATA_HEALTH, JOURNEY)
SYNC: Final = (CRM_TO_OA, OA_TO_CRM)
# Runs that stage vendor records without writing anywhere; they store their summary as the syncs do.
STAGING: Final = (JOURNEY,)
# Sync direction (watermark, pending change, quarantine, settings key) → its run kind.
SYNC_BY_DIRECTION: Final = {"crm_to_oa": CRM_TO_OA, "oa_to_crm": OA_TO_CRM}
DIRECTION_OF: Final = {kind: direction for direction, kind in SYNC_BY_DIRECTION.items()}

# What staff see for a run kind.
LABELS: Final = {
    CRM_TO_OA: "CRM → OA 同步",
    OA_TO_CRM: "OA → CRM 同步",
    DATA_HEALTH: "数据健康检查",
    JOURNEY: "客户旅程数据接入",
}


__all__ = [
    "ALL",
    "CRM_TO_OA",
    "DATA_HEALTH",
    "DIRECTION_OF",
    "JOURNEY",
    "LABELS",
    "OA_TO_CRM",
    "STAGING",
    "SYNC",
    "SYNC_BY_DIRECTION",
]
