"""Records as HubSpot puts them on the wire (pure: rows in, dicts out)."""

from __future__ import annotations

from typing import Any

import orjson

from sandbox.crm.model import DEFAULT_PROPERTIES, ENGAGEMENTS, PropertyDef, iso_ms
from sandbox.crm.search import Row


def derived_properties(object_type: str, row: Row) -> dict[str, str]:
    """Server-maintained properties, computed from the row's columns."""
    modified = iso_ms(row[2])
    created = iso_ms(row[1])
    out = {"hs_object_id": str(row[0]), "hs_lastmodifieddate": modified}
    if object_type in ENGAGEMENTS:
        out["hs_createdate"] = created
    else:
        out["createdate"] = created
    if object_type == "contacts":
        out["lastmodifieddate"] = modified
    return out


def object_json(object_type: str, row: Row, wanted: list[str] | None, defs: dict[str, PropertyDef],
                stored: dict[str, str] | None = None) -> dict[str, Any]:
    """A SimplePublicObject. Requested properties that exist but hold no value are ``null``, as HubSpot
    answers (the spec types values as strings only); requested names that do not exist are left out."""
    if stored is None:
        stored = orjson.loads(row[5])
    derived = derived_properties(object_type, row)
    props: dict[str, str | None] = {}
    for name in wanted or DEFAULT_PROPERTIES[object_type]:
        if name in derived:
            props[name] = derived[name]
        elif name in stored:
            props[name] = stored[name]
        elif name in defs:
            props[name] = None
    out: dict[str, Any] = {"id": str(row[0]), "properties": props, "createdAt": derived.get("createdate")
                           or derived["hs_createdate"], "updatedAt": derived["hs_lastmodifieddate"],
                           "archived": bool(row[3])}
    if row[3] and row[4] is not None:
        out["archivedAt"] = iso_ms(row[4])
    return out


def full_json(object_type: str, row: Row) -> dict[str, Any]:
    """Every stored and derived property (admin dump)."""
    stored = orjson.loads(row[5])
    out: dict[str, Any] = {"id": str(row[0]), "properties": {**stored, **derived_properties(object_type, row)},
                           "createdAt": iso_ms(row[1]), "updatedAt": iso_ms(row[2]), "archived": bool(row[3])}
    if row[3] and row[4] is not None:
        out["archivedAt"] = iso_ms(row[4])
    return out


def with_history(obj: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``propertiesWithHistory``: the simulator keeps no history, so each property has its current value."""
    hist: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        value = obj["properties"].get(name)
        if value is not None:
            hist[name] = [{"value": value, "timestamp": obj["updatedAt"], "sourceType": "API", "sourceId": "sim"}]
    obj["propertiesWithHistory"] = hist
    return obj
