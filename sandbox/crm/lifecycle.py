"""HubSpot routes of a record's later life: merges, labelled associations and their removal, and
properties created through the API (``hasUniqueValue``).

Shapes follow ``sandbox/specs/hubspot/`` (``companies-v3.json`` and ``custom-objects-v3.json`` for
merge, ``associations-v4.json``, ``properties-v3.json``); what the files do not say is cited in
``docs/sim_crm.md`` and ``sandbox/specs/hubspot/NOTES.md``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.crm.api import _now_iso, _pair, _require, _sim, _written_view, object_type, read_json
from sandbox.crm.app import Sim, json_response
from sandbox.crm.errors import HubSpotError, object_not_found
from sandbox.crm.model import ASSOCIATION_BY_ID, ObjectType, PropertyDef, iso_ms, property_json

router = APIRouter()
MERGEABLE = ("companies", "contacts", "deals")
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
FIELD_TYPES = {"text", "textarea", "number", "date", "select", "radio", "checkbox", "booleancheckbox",
               "phonenumber", "file", "calculation_equation", "html"}
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


# ------------------------------------------------------------------ merge


@router.post("/crm/v3/objects/{object_type_raw}/merge")
async def merge(request: Request, object_type_raw: str) -> Response:
    """``{objectIdToMerge, primaryObjectId}`` → the survivor (200, SimplePublicObject)."""
    sim = _sim(request)
    t = object_type(object_type_raw)
    if t.name not in MERGEABLE:
        raise HubSpotError(400, f"Merging is not supported for {t.name}", "VALIDATION_ERROR")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise HubSpotError(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR")
    missing = [k for k in ("objectIdToMerge", "primaryObjectId") if not str(body.get(k) or "").strip()]
    if missing:
        raise HubSpotError(400, f"Invalid input JSON: missing required field(s) {', '.join(missing)}",
                           "VALIDATION_ERROR", context={"missing": missing})
    absorbed_raw, primary_raw = str(body["objectIdToMerge"]), str(body["primaryObjectId"])
    for raw in (absorbed_raw, primary_raw):
        if not raw.isdigit() or sim.store.get(t, int(raw)) is None:
            raise object_not_found(raw)
    with sim.store.transaction():
        row = sim.store.merge(t, int(primary_raw), int(absorbed_raw))
    return json_response(_written_view(sim, t, row, {"hs_merged_object_ids": ""}))


# ------------------------------------------------------------------ labelled associations (v4)


def _specs(sim: Sim, f: ObjectType, to: ObjectType, raw: Any) -> list[tuple[int, bool, bool]]:
    """``[AssociationSpec]`` → (type id, is primary, is user-defined); 400 for a type of another pair."""
    if not isinstance(raw, list) or not raw:
        raise HubSpotError(400, "Invalid input JSON: expected a non-empty array of association types",
                           "VALIDATION_ERROR")
    out = []
    for spec in raw:
        type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
        category = spec.get("associationCategory") if isinstance(spec, dict) else None
        known = ASSOCIATION_BY_ID.get(type_id) if isinstance(type_id, int) else None
        label = sim.store.label_of(type_id) if isinstance(type_id, int) else None
        if category == "HUBSPOT_DEFINED" and known is not None and known[:2] == (f.name, to.name):
            out.append((int(type_id), known[2], False))  # type: ignore[arg-type]
        elif category == "USER_DEFINED" and label is not None and label[:2] == (f.name, to.name):
            out.append((int(type_id), False, True))  # type: ignore[arg-type]
        else:
            raise HubSpotError(400, f"{type_id} is not a valid {category} association type between {f.name} "
                                    f"and {to.name}", "VALIDATION_ERROR",
                               sub_category="crm.associations.INVALID_ASSOCIATION_TYPE",
                               context={"typeId": [str(type_id)], "fromObjectType": [f.name],
                                        "toObjectType": [to.name]})
    return out


def _labelled(sim: Sim, f: ObjectType, to: ObjectType, a: int, b: int, specs: list[tuple[int, bool, bool]]) -> dict[str, Any]:
    primary = any(p for _, p, _ in specs)
    sim.store.associate(f.name, a, to.name, b, primary)
    for type_id, _, user in specs:
        if user:
            sim.store.add_label(a, b, type_id)
    labels = [label for _, label in sim.store.labels([a], to.name).get((a, b), [])]
    return {"fromObjectTypeId": f.type_id, "fromObjectId": str(a), "toObjectTypeId": to.type_id,
            "toObjectId": str(b), "labels": (["Primary"] if primary else []) + labels}


@router.put("/crm/v4/objects/{from_raw}/{from_id}/associations/{to_raw}/{to_id}")
async def associate_labelled(request: Request, from_raw: str, from_id: str, to_raw: str, to_id: str) -> Response:
    sim = _sim(request)
    f, to = _pair(from_raw, to_raw)
    a, b = _require(sim, f, from_id), _require(sim, to, to_id)
    specs = _specs(sim, f, to, await read_json(request))
    with sim.store.transaction():
        body = _labelled(sim, f, to, a, b, specs)
    return json_response(body, 201)


@router.delete("/crm/v4/objects/{from_raw}/{from_id}/associations/{to_raw}/{to_id}")
async def unassociate(request: Request, from_raw: str, from_id: str, to_raw: str, to_id: str) -> Response:
    """Removes every association (all labels) between the two records; 204 even when none existed."""
    sim = _sim(request)
    _pair(from_raw, to_raw)
    if from_id.isdigit() and to_id.isdigit():
        with sim.store.transaction():
            sim.store.remove_association(int(from_id), int(to_id))
    return Response(status_code=204)


def _inputs(body: Any) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        raise HubSpotError(400, "Invalid input JSON: inputs is required", "VALIDATION_ERROR")
    if len(inputs) > 2000:
        raise HubSpotError(400, "Too many inputs: at most 2000 per batch", "VALIDATION_ERROR")
    return [i if isinstance(i, dict) else {} for i in inputs]


def _ids(item: dict[str, Any], key: str) -> str:
    side = item.get(key)
    return str(side.get("id", "")) if isinstance(side, dict) else ""


@router.post("/crm/v4/associations/{from_raw}/{to_raw}/batch/create")
async def batch_create(request: Request, from_raw: str, to_raw: str) -> Response:
    sim = _sim(request)
    started = _now_iso(sim)
    f, to = _pair(from_raw, to_raw)
    work = [(_require(sim, f, _ids(i, "from")), _require(sim, to, _ids(i, "to")), _specs(sim, f, to, i.get("types")))
            for i in _inputs(await read_json(request))]
    with sim.store.transaction():
        results = [_labelled(sim, f, to, a, b, specs) for a, b, specs in work]
    return json_response({"status": "COMPLETE", "results": results, "startedAt": started,
                          "completedAt": _now_iso(sim)}, 201)


@router.post("/crm/v4/associations/{from_raw}/{to_raw}/batch/archive")
async def batch_archive(request: Request, from_raw: str, to_raw: str) -> Response:
    """``{inputs: [{from: {id}, to: [{id}, …]}]}``: remove every association of each pair."""
    sim = _sim(request)
    _pair(from_raw, to_raw)
    with sim.store.transaction():
        for item in _inputs(await read_json(request)):
            a = _ids(item, "from")
            targets = item.get("to") if isinstance(item.get("to"), list) else []
            for target in targets:
                b = str(target.get("id", "")) if isinstance(target, dict) else ""
                if a.isdigit() and b.isdigit():
                    sim.store.remove_association(int(a), int(b))
    return Response(status_code=204)


@router.post("/crm/v4/associations/{from_raw}/{to_raw}/batch/labels/archive")
async def batch_labels_archive(request: Request, from_raw: str, to_raw: str) -> Response:
    """Remove only the given labels; the records stay associated (unlabeled) — HubSpot's documented
    difference between removing a label and removing the association."""
    sim = _sim(request)
    f, to = _pair(from_raw, to_raw)
    work = [(_ids(i, "from"), _ids(i, "to"), _specs(sim, f, to, i.get("types"))) for i in _inputs(await read_json(request))]
    with sim.store.transaction():
        for a, b, specs in work:
            if not (a.isdigit() and b.isdigit()):
                continue
            for type_id, primary, user in specs:
                if user:
                    sim.store.remove_label(int(a), int(b), type_id)
                elif primary:
                    sim.store._drop_primary(int(a), to.code, f.code)
                    if (f.name, to.name) == ("contacts", "companies"):
                        sim.store._set_primary_company(int(a), "")
    return Response(status_code=204)


@router.get("/crm/v4/associations/{from_raw}/{to_raw}/labels")
async def labels(request: Request, from_raw: str, to_raw: str) -> Response:
    """The association types of a pair (HubSpot's associations schema API): HubSpot-defined and the
    portal's own labels."""
    sim = _sim(request)
    f, to = _pair(from_raw, to_raw)
    from sandbox.crm.model import ASSOCIATION_TYPES

    default, prim = ASSOCIATION_TYPES[(f.name, to.name)]
    results: list[dict[str, Any]] = [{"category": "HUBSPOT_DEFINED", "typeId": default, "label": None}]
    if prim is not None:
        results.append({"category": "HUBSPOT_DEFINED", "typeId": prim, "label": "Primary"})
    results.extend({"category": "USER_DEFINED", "typeId": i, "label": lbl} for i, lbl in sim.store.label_defs(f.name, to.name))
    return json_response({"results": results})


# ------------------------------------------------------------------ properties API


def _property_input(t: ObjectType, body: Any) -> PropertyDef:
    if not isinstance(body, dict):
        raise HubSpotError(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR")
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise HubSpotError(400, f"Invalid input JSON: missing required field(s) {', '.join(missing)}",
                           "VALIDATION_ERROR", context={"missing": missing})
    name = str(body["name"])
    if not PROPERTY_NAME.match(name):
        raise HubSpotError(400, f"Property name {name!r} is invalid: use lowercase letters, digits and underscores, "
                                f"starting with a letter", "VALIDATION_ERROR", context={"name": [name]})
    if body["type"] not in PROPERTY_TYPES or body["fieldType"] not in FIELD_TYPES:
        raise HubSpotError(400, f"Invalid type/fieldType {body['type']}/{body['fieldType']} for property {name}",
                           "VALIDATION_ERROR", context={"type": [str(body["type"])]})
    options = tuple((str(o.get("value", "")), str(o.get("label", ""))) for o in body.get("options") or []
                    if isinstance(o, dict))
    return PropertyDef(name=name, label=str(body["label"]), type=str(body["type"]), field_type=str(body["fieldType"]),
                       group=str(body["groupName"]), options=options, unique=bool(body.get("hasUniqueValue")),
                       custom=True, description=str(body.get("description") or ""))


@router.post("/crm/v3/properties/{object_type_raw}")
async def create_property(request: Request, object_type_raw: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    p = _property_input(t, await read_json(request))
    if p.name in sim.store.defs[t.name]:
        raise HubSpotError(409, f"A property named '{p.name}' already exists.", "OBJECT_ALREADY_EXISTS",
                           context={"name": [p.name]})
    unique_count = sum(1 for d in sim.store.defs[t.name].values() if d.unique and d.custom)
    if p.unique and unique_count >= 10:  # HubSpot: up to 10 unique-value properties per object type
        raise HubSpotError(400, "Unable to create property: the limit of 10 unique value properties for "
                                f"{t.name} has been reached", "VALIDATION_ERROR")
    with sim.store.transaction():
        sim.store.create_property(t, p)
    return json_response(property_json(p, iso_ms(sim.store.clock.now_ms())), 201)

