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

import hashlib
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from bridge.dictionary import Dictionary, MappingResult, formats, mapping
from bridge.hooks import hubspot_codec
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
        content_hash=content_hash(dictionary, entity, record),
        payload=snapshot_payload(result),
        source_modified_ms=modified if modified is not None else fallback_modified_ms,
        data_owner=dictionary.data_owner(entity, record),
    )


# ---------------------------------------------------------------- the content hash, fast
# Values whose JSON text orjson writes exactly as ``json.dumps(..., ensure_ascii=False,
# separators=(",", ":"))`` does (tests/sync/test_sync_staging_identity.py proves it for every code
# point); anything else (floats, Decimals, dates, nested values) takes the dictionary's own path.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def content_hash(dictionary: Dictionary, entity: str, record: Mapping[str, Any]) -> str:
    """``Dictionary.content_hash`` of the record, byte for byte, from orjson's text when the values allow."""
    return hash_of(dictionary.hash_fields(entity), record) or dictionary.content_hash(entity, record)


def hash_of(fields: Sequence[str], record: Mapping[str, Any]) -> str | None:
    """sha256 of the canonical JSON of ``fields`` of ``record``; None when a value is not plain JSON (the
    caller then uses ``Dictionary.content_hash``, whose text for these values is the same)."""
    part = {name: record.get(name) for name in fields}
    if not {type(v) for v in part.values()} <= _PLAIN_TYPES:
        return None
    try:
        text = orjson.dumps(part)
    except TypeError:  # orjson's JSONEncodeError: an int beyond 64 bits, a lone surrogate: the dictionary's path decides
        return None
    return hashlib.sha256(text).hexdigest()


# ---------------------------------------------------------------- one entity's CRM objects → rows, one pass
_NO_MEMO = frozenset({formats.clean_text, formats.clean_datetime})  # cheap already, or values never repeat
# Values a cleaner returns unchanged: HubSpot's own amounts ("165600.00") are already canonical
# (clean_amount: 2 decimals, no sign, below 10^12), so they skip the Decimal arithmetic.
_ALREADY_CANONICAL: dict[Callable[[object], formats.Cleaned], re.Pattern[str]] = {
    formats.clean_amount: re.compile(r"(?:0|[1-9][0-9]{0,11})\.[0-9]{2}"),
}
_MEMO_SIZE = 4096
_TEXT_FAST = formats.MAX_TEXT_CHARS // 4  # clean_text's own common case, inlined below

# One field of a compiled CRM entity: name, property, the envelope's copy of it (HubSpot's top-level id
# and times), whether it is an association, cleaner, value map (spelling → canonical), required, memo
# of the cleaner's results (None: not kept), whether the cleaner is clean_text, the pattern of values
# the cleaner returns as they are (None: none known).
_Spec = tuple[str, str, str | None, bool, Callable[[object], formats.Cleaned], Mapping[str, str] | None,
              bool, dict[str, Any] | None, bool, Callable[[str], object] | None]


def _spec(reader: mapping.Reader) -> _Spec:
    return (reader.name, reader.source, hubspot_codec.TOP_LEVEL.get(reader.source),
            reader.kind == mapping.READ_ASSOCIATION, reader.clean, reader.inbound, reader.required,
            None if reader.clean in _NO_MEMO else {}, reader.clean is formats.clean_text,
            pattern.fullmatch if (pattern := _ALREADY_CANONICAL.get(reader.clean)) else None)


class _Unusual(Exception):
    """A record the one-pass mapper leaves to ``Dictionary.from_crm`` (it has a problem or odd shape)."""


class CrmStager:
    """CRM objects of one entity → (snapshot row, mapping result), the same as ``Dictionary.from_crm`` and
    :func:`snapshot_row` give, in one pass over precomputed field specs.

    A clean record (every value a string the field's cleaner and value map accept) is mapped, hashed
    and made a row here; a record with any problem or an unusual shape goes through
    ``Dictionary.from_crm`` and :func:`snapshot_row` unchanged, so problems, their Chinese messages and
    the quarantine decisions are the dictionary's own. Build with :func:`crm_stager` (one per
    dictionary and entity)."""

    def __init__(self, dictionary: Dictionary, entity: str) -> None:
        ent = dictionary.entity(entity)
        if ent.system != "crm":
            raise ValueError(f"entity {entity} is an OA entity; CrmStager maps CRM objects")
        plan = mapping.compile_entity(ent, dictionary.value_maps)  # the readers Dictionary.from_crm runs
        self.d, self.entity = dictionary, entity
        self.has_associations = bool(ent.associations)
        self.specs = tuple(_spec(r) for r in plan.readers)
        self.derives = plan.derives
        self.fields = tuple(ent.fields)
        self.hash_fields = plan.hash_fields
        self.id_field, self.modified_field = ent.id_field, ent.modified_field
        self.owner_field = ent.data_owner_field

    def stage(self, obj: Any, associations: Any) -> tuple[SnapshotRow | None, MappingResult]:
        """The snapshot row (None without an id) and the mapping result of one object."""
        if not self.has_associations:
            associations = None
        try:
            record = self._clean_record(obj, associations)
        except _Unusual:
            result = self.d.from_crm(self.entity, obj, associations)
            return snapshot_row(self.d, self.entity, result), result
        return self._row(record), MappingResult(record, [])

    def _clean_record(self, obj: Any, associations: Any) -> dict[str, Any]:
        """``mapping.from_crm`` for a record without problems; :class:`_Unusual` at the first sign of one."""
        props = obj.get("properties") if type(obj) is dict else None
        if type(props) is not dict:
            raise _Unusual
        record: dict[str, Any] = dict.fromkeys(self.fields)
        for name, source, top, association, clean, inbound, required, memo, text, as_is in self.specs:
            if association:
                value = _first_id(associations, source)
            else:
                value = props.get(source)
                if value is None and top is not None:
                    value = obj.get(top)
                if value is not None and type(value) is not str:
                    raise _Unusual
            if not value:  # None or ""
                if required:
                    raise _Unusual
                continue
            if text and len(value) <= _TEXT_FAST and "\x00" not in value:
                cleaned = value.strip() or None
            elif as_is is not None and as_is(value):
                cleaned = value
            elif memo is not None and value in memo:
                cleaned = memo[value]
            else:
                cleaned, issue = clean(value)
                if issue is not None:
                    raise _Unusual
                if memo is not None and len(memo) < _MEMO_SIZE:
                    memo[value] = cleaned
            if cleaned is None:
                if required:
                    raise _Unusual
                continue
            if inbound is not None:
                cleaned = inbound.get(cleaned)
                if cleaned is None:
                    raise _Unusual
            record[name] = cleaned
        for name, template in self.derives:
            record[name] = template.render(lambda ref: _as_text(record.get(ref))) or None
        return record

    def _row(self, record: dict[str, Any]) -> SnapshotRow | None:
        source_id = record.get(self.id_field)
        if source_id is None or not str(source_id):
            return None
        modified = record.get(self.modified_field)
        owner = record.get(self.owner_field) if self.owner_field else None
        return SnapshotRow(
            source_id=str(source_id),
            content_hash=hash_of(self.hash_fields, record) or self.d.content_hash(self.entity, record),
            payload=dict(record),
            source_modified_ms=formats.datetime_to_ms(modified) if isinstance(modified, str) else 0,
            data_owner=None if owner is None else str(owner),
        )


def _first_id(associations: Any, object_type: str) -> str | None:
    """The first associated id, when the ids are plain strings (else the dictionary's reader decides)."""
    found = associations.get(object_type) if type(associations) is dict else None
    if type(found) is not list or (found and type(found[0]) is not str):
        raise _Unusual
    return found[0] if found else None


def _as_text(value: object) -> str:
    return "" if value is None else str(value)


_stagers: weakref.WeakKeyDictionary[Dictionary, dict[str, CrmStager]] = weakref.WeakKeyDictionary()


def crm_stager(dictionary: Dictionary, entity: str) -> CrmStager:
    """The compiled stager of a CRM entity (built once per dictionary)."""
    per_entity = _stagers.setdefault(dictionary, {})
    stager = per_entity.get(entity)
    if stager is None:
        stager = per_entity[entity] = CrmStager(dictionary, entity)
    return stager
