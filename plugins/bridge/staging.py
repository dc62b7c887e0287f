"""What a snapshot row holds: the one convention for every writer of ``snapshot``.

The syncs, the history migration and the tests all stage source records the
same way, so the data-health suites and the report read one shape:

* ``payload`` is the canonical record (``bridge.dictionary``): clean values,
  ``None`` where the source value was missing or unusable;
* ``payload["_invalid"]`` (only when there are such values) maps a field to the
  offending source value as text (invalid format, unmapped enum value), so a
  data owner can see *what* is wrong — the sync never sends these values on;
* ``payload["_problems"]`` lists the problem codes of the record;
* ``payload["_merged_into"]`` (history migration only) names the customer a
  duplicate was merged into;
* ``content_hash`` is ``Dictionary.content_hash`` of the canonical record
  (fields owned by the record's own system; see include/dictionary.yaml);
* ``source_modified_ms`` and ``data_owner`` come from the dictionary's
  ``modified_field`` and ``data_owner_field``.
"""

from __future__ import annotations

from typing import Any

from bridge.dictionary import Dictionary, MappingResult
from bridge.hub.store import SnapshotRow

INVALID_KEY = "_invalid"
PROBLEMS_KEY = "_problems"
# Set by the history migration on a customer merged into another (the id kept).
MERGED_KEY = "_merged_into"


def snapshot_payload(result: MappingResult) -> dict[str, Any]:
    """The canonical record plus the invalid source values and problem codes."""
    payload = dict(result.record)
    invalid = {p.field: p.value for p in result.problems if p.field and p.value is not None}
    if invalid:
        payload[INVALID_KEY] = invalid
    if result.problems:
        payload[PROBLEMS_KEY] = sorted({p.code for p in result.problems})
    return payload


def canonical(payload: dict[str, Any]) -> dict[str, Any]:
    """A snapshot payload without the staging keys (what forms and reports use)."""
    return {k: v for k, v in payload.items() if k not in (INVALID_KEY, PROBLEMS_KEY, MERGED_KEY)}


def snapshot_row(dictionary: Dictionary, entity: str, result: MappingResult,
                 fallback_modified_ms: int = 0) -> SnapshotRow | None:
    """The row to upsert for a mapped record; None when the record has no id (it cannot be staged)."""
    record = result.record
    source_id = dictionary.record_id(entity, record)
    if not source_id:
        return None
    modified = dictionary.modified_ms(entity, record)
    return SnapshotRow(
        source_id=source_id,
        content_hash=dictionary.content_hash(entity, record),
        payload=snapshot_payload(result),
        source_modified_ms=modified if modified is not None else fallback_modified_ms,
        data_owner=dictionary.data_owner(entity, record),
    )
