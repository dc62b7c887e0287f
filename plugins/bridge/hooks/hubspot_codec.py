"""HubSpot's wire formats, as pure functions: record envelopes, search bodies, error categories, webhooks.

Everything the bridge knows about how HubSpot spells a record lives here (and
in ``hooks/crm.py``, which sends it): the ``{id, properties, createdAt,
updatedAt}`` envelope, the API-computed properties (``hs_object_id``,
``hs_lastmodifieddate``/``lastmodifieddate``, ``createdate``), the
``filterGroups`` search body, the batch-error ``category`` strings and the
fields of a webhook event. Callers outside ``hooks/`` get typed values in
business terms (:class:`CrmRecord`, :class:`CrmChange`, :class:`RecordErrorKind`).
A second CRM adds a codec like this one beside its hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from bridge.hooks.errors import RecordErrorKind

OBJECT_ID = "hs_object_id"  # every object's id as a property (the default id of batch reads/updates)
CREATED = "createdate"
# Contacts keep their modification time in ``lastmodifieddate``; the other objects in ``hs_lastmodifieddate``.
MODIFIED = "hs_lastmodifieddate"
CONTACT_MODIFIED = "lastmodifieddate"
_CONTACT_NAMES = frozenset({"contact", "contacts", "0-1"})
# HubSpot returns these at the top level of an object too; used when the property is absent.
TOP_LEVEL = {OBJECT_ID: "id", MODIFIED: "updatedAt", CREATED: "createdAt"}
# Properties the API computes; never written.
READ_ONLY = frozenset({OBJECT_ID, MODIFIED, CREATED, "hs_createdate"})
# The ids a record absorbed by merges (``;``-separated, in merge order): read with the mapped properties.
MERGED_IDS = "hs_merged_object_ids"
LIFECYCLE_PROPERTIES = (MERGED_IDS,)

# Batch-error categories (and the hook's own outcome categories) by the kind callers test.
_KINDS = {
    "OBJECT_NOT_FOUND": RecordErrorKind.NOT_FOUND,
    "VALIDATION_ERROR": RecordErrorKind.VALIDATION,
    "PROPERTY_DOESNT_EXIST": RecordErrorKind.VALIDATION,
    "INVALID_OPTION": RecordErrorKind.VALIDATION,
    "CONFLICT": RecordErrorKind.CONFLICT,
    "OBJECT_ALREADY_EXISTS": RecordErrorKind.CONFLICT,
    "MISSING_ID": RecordErrorKind.MISSING_ID,
    "DUPLICATE_INPUT": RecordErrorKind.DUPLICATE_INPUT,
    "MISSING_RESULT": RecordErrorKind.MISSING_RESULT,
}

# objectTypeId of the generic ``object.*`` webhook subscriptions, and the older typed names.
WEBHOOK_OBJECT_TYPES = {"0-1": "contact", "0-2": "company", "0-3": "deal"}


CrmObject = dict[
    str, Any
]  # one HubSpot object as sent: {id, properties, createdAt, updatedAt, associations?, …}


class SearchFilter(TypedDict):
    propertyName: str
    operator: str
    value: str


class SearchSort(TypedDict):
    propertyName: str
    direction: str


class FilterGroup(TypedDict):
    filters: list[SearchFilter]


class SearchBody(TypedDict, total=False):
    """The body of ``POST /crm/v3/objects/{type}/search``."""

    filterGroups: list[FilterGroup]
    limit: int
    properties: list[str]
    sorts: list[SearchSort]
    after: str


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One CRM record in business terms: its id, its properties, and its creation and modification
    times as HubSpot sent them (ISO 8601 or epoch-ms strings; the caller cleans them)."""

    id: str
    properties: Mapping[str, object]
    created: object
    modified: object
    merged_ids: tuple[str, ...] = ()  # the ids this record absorbed by merges (they answer with it)


@dataclass(frozen=True, slots=True)
class CrmOwner:
    """A CRM user who owns records (a salesperson): id, names as entered, e-mail."""

    id: str
    family_name: str
    given_name: str
    email: str


@dataclass(frozen=True, slots=True)
class CrmChange:
    """One webhook event: which record changed how, when (ms), and the delivery's ids."""

    record_type: str | None  # deal / company / contact; None for an object type the bridge does not sync
    change: str  # creation / propertyChange / deletion / merge / restore / associationChange
    record_id: object
    event_id: object
    occurred_ms: object
    app_id: str
    portal_id: str


@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """A record archived (deleted) in the CRM: its id and when it was archived (ISO 8601 as sent, or None)."""

    id: str
    archived_at: str | None


@dataclass(frozen=True, slots=True)
class ArchivedPage:
    """One page of archived records, and the cursor of the next page (None: this was the last)."""

    records: tuple[ArchivedRecord, ...]
    next_after: str | None


def archived_page_of(body: object) -> ArchivedPage:
    """One ``GET /crm/v3/objects/{type}?archived=true`` answer: ``results[{id, archived, archivedAt}]`` and
    ``paging.next.after`` (absent on the last page)."""
    doc = body if isinstance(body, Mapping) else {}
    results = doc.get("results")
    records = tuple(
        ArchivedRecord(str(obj["id"]), str(obj["archivedAt"]) if obj.get("archivedAt") else None)
        for obj in (results if isinstance(results, list) else [])
        if isinstance(obj, Mapping) and obj.get("id") is not None and obj.get("archived", True) is not False
    )
    paging = doc.get("paging")
    nxt = paging.get("next") if isinstance(paging, Mapping) else None
    after = nxt.get("after") if isinstance(nxt, Mapping) else None
    return ArchivedPage(records, str(after) if after else None)


def modified_property(object_type: str) -> str:
    """The property holding an object's last modification time."""
    return CONTACT_MODIFIED if object_type.lower() in _CONTACT_NAMES else MODIFIED


def search_filter(name: str, operator: str, value: int) -> SearchFilter:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def search_body(
    filters: list[SearchFilter], limit: int, properties: Sequence[str], sort_by: str
) -> SearchBody:
    """A one-group search, ascending by ``sort_by``."""
    return {
        "filterGroups": [{"filters": filters}],
        "limit": limit,
        "properties": list(properties),
        "sorts": [{"propertyName": sort_by, "direction": "ASCENDING"}],
    }


def count_body(object_type: str, since_ms: int, until_ms: int) -> SearchBody:
    """The cheapest search whose ``total`` counts the records modified in ``[since, until)``."""
    stamp = modified_property(object_type)
    return {
        "filterGroups": [
            {"filters": [search_filter(stamp, "GTE", since_ms), search_filter(stamp, "LT", until_ms)]}
        ],
        "limit": 1,
        "properties": [OBJECT_ID],
    }


def looks_like_object(doc: object) -> bool:
    """Whether a saved JSON document is a CRM object (it has ``properties``)."""
    return isinstance(doc, dict) and "properties" in doc


def object_properties(obj: Mapping[str, object]) -> object:
    """The ``properties`` of an object as sent (the caller checks that it is a mapping)."""
    return obj.get("properties")


def object_id(obj: Mapping[str, object]) -> object:
    """An object's id: the envelope's ``id``, else its ``hs_object_id`` property."""
    if obj.get("id") is not None:
        return obj.get("id")
    props = obj.get("properties")
    return props.get(OBJECT_ID) if isinstance(props, Mapping) else None


def property_value(obj: Mapping[str, object], props: Mapping[str, object], name: str) -> object:
    """A property's value, falling back to the envelope for the ones HubSpot also puts at the top level."""
    value = props.get(name)
    if value is None and name in TOP_LEVEL:
        value = obj.get(TOP_LEVEL[name])
    return value


def is_writable(name: str) -> bool:
    """Whether the bridge may write a property (HubSpot computes the others)."""
    return name not in READ_ONLY


def record_of(obj: Mapping[str, object], object_type: str) -> CrmRecord:
    """The typed record of one search/batch result."""
    raw = obj.get("properties")
    props: Mapping[str, object] = raw if isinstance(raw, Mapping) else {}
    return CrmRecord(
        id=str(obj.get("id")),
        properties=props,
        created=props.get(CREATED) or obj.get("createdAt"),
        modified=props.get(modified_property(object_type)) or obj.get("updatedAt"),
        merged_ids=merged_ids_of(obj),
    )


def merged_ids_of(obj: Mapping[str, object]) -> tuple[str, ...]:
    """The ids an object absorbed by merges (empty when it absorbed none or the property was not read)."""
    props = obj.get("properties")
    raw = props.get(MERGED_IDS) if isinstance(props, Mapping) else None
    if not isinstance(raw, str):
        return ()
    return tuple(dict.fromkeys(part.strip() for part in raw.split(";") if part.strip()))


def modified_value(obj: Mapping[str, object], object_type: str) -> object:
    """The modification-time property of an object as sent (None when the property is absent)."""
    props = obj.get("properties")
    return props.get(modified_property(object_type)) if isinstance(props, Mapping) else None


def owner_of(obj: Mapping[str, object]) -> CrmOwner:
    """The typed owner of one ``/crm/v3/owners`` result (which has an id)."""
    return CrmOwner(
        str(obj.get("id")),
        str(obj.get("lastName") or "").strip(),
        str(obj.get("firstName") or "").strip(),
        str(obj.get("email") or ""),
    )


def error_kind(category: str | None) -> RecordErrorKind:
    """What kind of refusal a batch-error category (or the hook's own outcome category) is."""
    return _KINDS.get(category or "", RecordErrorKind.OTHER)


def webhook_change(event: Mapping[str, object]) -> CrmChange:
    """Decode one webhook event; association changes name the record by ``fromObjectId``."""
    kind = str(event.get("subscriptionType", ""))
    prefix, _, change = kind.partition(".")
    if change == "associationChange":
        type_id, record_id = (
            event.get("fromObjectTypeId", event.get("objectTypeId")),
            event.get("fromObjectId"),
        )
    else:
        type_id, record_id = event.get("objectTypeId"), event.get("objectId")
    if prefix == "object":
        record_type = WEBHOOK_OBJECT_TYPES.get(str(type_id or ""))
    else:
        record_type = prefix if prefix in WEBHOOK_OBJECT_TYPES.values() else None
    return CrmChange(
        record_type,
        change,
        record_id,
        event.get("eventId"),
        event.get("occurredAt"),
        app_id=str(event.get("appId", "")),
        portal_id=str(event.get("portalId", "")),
    )
