"""The customer journey's sources staged in the hub (issue 20): ``journey_sync`` reads, nothing is written back.

What is staged (hub ``snapshot`` rows, payload = the canonical record of ``include/dictionary.yaml``; rows
with a blocking problem are quarantined instead, direction ``journey``):

========================  ======  =====================================  ===============================
entity                    system  source                                 watermark stream
========================  ======  =====================================  ===============================
``campaign``              crm     CrmHook.iter_campaigns                 ``crm.campaign`` (updated_at)
``marketing_event``       crm     CrmHook.iter_marketing_events          ``crm.marketing_event``
``event_participation``   crm     CrmHook.event_participations per event ``crm.event_participation``
``contact_source``        crm     CrmHook.contact_sources of the hub's   ``crm.contact_source`` (the
                                  contacts changed since the watermark   contacts' modification time)
``feedback_submission``   crm     CrmHook.iter_feedback_changed, and     ``crm.feedback_submission``
                                  spreadsheet imports (origin import)
``performance_review``    oa      OaHook.performance_semesters +         ``oa.performance_review`` (end
                                  iter_review_results, and imports       of the last settled period)
========================  ======  =====================================  ===============================

:mod:`bridge.journey.staging` reads and stages the vendor sources, :mod:`bridge.journey.imports` the
spreadsheets of ``journey.import_dir``, :mod:`bridge.journey.tasks` is what the DAG calls.
"""

from __future__ import annotations

from bridge import runkinds

DIRECTION = "journey"  # quarantine direction (bridge.hub.store.QUARANTINE_DIRECTIONS)
KIND = runkinds.JOURNEY  # run_summary.kind
CRM_ENTITIES = ("campaign", "marketing_event", "event_participation", "contact_source", "feedback_submission")
OA_ENTITIES = ("performance_review",)
ENTITIES = (*CRM_ENTITIES, *OA_ENTITIES)
SYSTEM_OF = {**dict.fromkeys(CRM_ENTITIES, "crm"), **dict.fromkeys(OA_ENTITIES, "oa")}
ORIGIN_VENDOR = {"crm": "crm", "oa": "oa"}  # payload["origin"] of a record read from a vendor
ORIGIN_IMPORT = "import"  # payload["origin"] of a spreadsheet row


def stream_of(entity: str) -> str:
    """The watermark stream of an entity (``crm.campaign``, ``oa.performance_review``)."""
    return f"{SYSTEM_OF[entity]}.{entity}"
