"""The HubSpot routes: OAuth, objects (basic, batch, search), associations v4, owners, properties, pipelines.

Shapes follow ``sandbox/specs/hubspot/``; where HubSpot's documented or
observed behaviour differs from the spec, the vendor wins and a comment says so.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.common.world import DEPARTMENTS
from sandbox.crm.app import Sim, json_response
from sandbox.crm.errors import HubSpotError, object_not_found, property_errors, standard_error
from sandbox.crm.model import (
    ASSOCIATION_BY_ID,
    ASSOCIATION_TYPES,
    DEAL_STAGES,
    DEFAULT_PROPERTIES,
    ObjectType,
    Validated,
    association_names_v3,
    association_types_v4,
    iso_ms,
    property_json,
    resolve_type,
    validate,
)
from sandbox.crm.search import Row, parse_search
from sandbox.crm.store import id_property_error
from sandbox.crm.views import object_json, with_history

router = APIRouter()
BATCH_LIMIT = 100
LIST_LIMIT = 100
ASSOC_BATCH_LIMIT = 1000
PORTAL_CREATED_MS = 1_577_836_800_000  # 2020-01-01: when the simulated portal's definitions were made


# ------------------------------------------------------------------ helpers


def _sim(request: Request) -> Sim:
    sim: Sim = request.app.state.sim
    return sim


def object_type(raw: str) -> ObjectType:
    t = resolve_type(raw)
    if t is None:
        raise HubSpotError(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
    return t


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise HubSpotError(400, "Invalid input JSON: the request body is empty", "VALIDATION_ERROR")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HubSpotError(400, f"Invalid input JSON on line 1, column {exc.pos + 1}: {exc.msg}",
                           "VALIDATION_ERROR") from None


async def _object_input(request: Request) -> dict[str, Any]:
    """The body of a single-object write: a JSON object, else HubSpot's 400."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise HubSpotError(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR")
    return body


def _list_param(request: Request, name: str) -> list[str] | None:
    """``?properties=a,b&properties=c`` -> [a, b, c] (HubSpot accepts both spellings)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    return out or None


def _bool_param(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _inputs(body: Any, limit: int = BATCH_LIMIT) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise HubSpotError(400, "Invalid input JSON: Cannot build BatchInput, some of required attributes are "
                                "not set [inputs]", "VALIDATION_ERROR")
    inputs: list[Any] = body["inputs"]
    if len(inputs) > limit:
        # The exact wording is modelled on HubSpot's "maximum number of inputs supported in a batch request
        # for property histories is 50" message.
        raise HubSpotError(400, f"The maximum number of inputs supported in a batch request is {limit}. "
                                f"Please reduce the number of items and try again", "VALIDATION_ERROR",
                           context={"maxInputs": [str(limit)]})
    return inputs


def _limit_param(request: Request, default: int, most: int, *, listed: bool = False) -> int:
    """The ``limit`` query parameter; unparsable or outside 1..``most`` is HubSpot's 400.

    ``listed``: the object list endpoint also names the parameter in the error's ``errors``.
    """
    try:
        limit = int(request.query_params.get("limit", str(default)))
    except ValueError:
        limit = -1
    if not 1 <= limit <= most:
        message = f"limit must be between 1 and {most}"
        errors = [{"message": message, "in": "limit"}] if listed else None
        raise HubSpotError(400, message, "VALIDATION_ERROR", errors=errors)
    return limit


def _now_iso(sim: Sim) -> str:
    return iso_ms(sim.clock.now_ms())


class _Batch(NamedTuple):
    """One v3 batch call: the simulator, the object type, when the call started and its inputs as objects."""

    sim: Sim
    t: ObjectType
    started: str
    body: dict[str, Any]
    items: list[dict[str, Any]]


async def _batch(request: Request, object_type_raw: str, *, unique_ids: bool = False) -> _Batch:
    """Read a batch call's inputs; ``unique_ids``: refuse the batch when an id repeats, as HubSpot does."""
    sim = _sim(request)
    t = object_type(object_type_raw)
    started = _now_iso(sim)
    body = await read_json(request)
    items = [i if isinstance(i, dict) else {} for i in _inputs(body)]
    if unique_ids:
        _duplicate_check([str(i.get("id", "")) for i in items])
    return _Batch(sim, t, started, body, items)


def _not_found(t: ObjectType, missing: list[str]) -> list[dict[str, Any]]:
    """HubSpot's one error for the ids of a batch it could not find (none when every id was found)."""
    if not missing:
        return []
    return [standard_error(f"Could not get some {t.name} objects, they may be deleted or not exist. "
                           f"Check that ids are valid.", "OBJECT_NOT_FOUND", {"ids": missing})]


def _duplicate_check(ids: list[str]) -> None:
    seen: set[str] = set()
    dups = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
    if dups:
        raise HubSpotError(400, f"Duplicate IDs found in batch input: [{', '.join(dups)}]. IDs must be unique",
                           "VALIDATION_ERROR", context={"ids": dups})


def _with_associations(sim: Sim, t: ObjectType, rows: list[Row], results: list[dict[str, Any]],
                       wanted: list[str] | None) -> None:
    """The v3 ``associations`` block (only non-empty types appear, as on HubSpot)."""
    if not wanted or not rows:
        return
    ids = [r[0] for r in rows]
    for raw in wanted:
        to = resolve_type(raw)
        if to is None or (t.name, to.name) not in ASSOCIATION_TYPES:
            continue  # "If any of the specified associations do not exist, they will be ignored."
        found = sim.store.associations(ids, to.name)
        for obj, object_id in zip(results, ids, strict=True):
            links = found.get(object_id) or []
            if not links:
                continue
            block = [{"id": str(to_id), "type": name}
                     for to_id, primary in links for name in association_names_v3(t.name, to.name, primary)]
            obj.setdefault("associations", {})[to.name] = {"results": block}


def checked(sim: Sim, t: ObjectType, raw: Any, creating: bool) -> Validated:
    """``validate`` plus what needs the portal's files: a note's ``hs_attachment_ids`` must name files that
    exist (``;``-separated ids, spaces around them dropped)."""
    v = validate(sim.store.defs[t.name], raw, creating=creating, object_type=t.name)
    ids = v.properties.get("hs_attachment_ids")
    if t.name != "notes" or not ids:
        return v
    parts = [p.strip() for p in ids.split(";") if p.strip()]
    numeric = [int(p) for p in parts if p.isdigit()]
    live = sim.files.live_ids(numeric)
    bad = [p for p in parts if not p.isdigit() or int(p) not in live]
    if bad:
        message = f"hs_attachment_ids names files that do not exist: {';'.join(bad)}"
        v.errors.append({"isValid": False, "message": message, "error": "INVALID_OPTION",
                         "name": "hs_attachment_ids", "localizedErrorMessage": message})
    else:
        v.properties["hs_attachment_ids"] = ";".join(parts)
    return v


def _validated(sim: Sim, t: ObjectType, raw: Any, creating: bool) -> tuple[dict[str, str], int | None]:
    v = checked(sim, t, raw, creating)
    if v.errors:
        raise property_errors(v.errors)
    return v.properties, v.created_ms


def _create_associations(sim: Sim, t: ObjectType, raw: Any) -> list[tuple[str, int, bool]]:
    """``associations`` of a create input: [{to: {id}, types: [{associationCategory, associationTypeId}]}]."""
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        raise HubSpotError(400, "Invalid input JSON: associations must be an array", "VALIDATION_ERROR")
    out: list[tuple[str, int, bool]] = []
    for a in raw:
        to = a.get("to", {}) if isinstance(a, dict) else {}
        to_id = str(to.get("id", "")) if isinstance(to, dict) else ""
        for spec in a.get("types", []) if isinstance(a, dict) else []:
            type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
            known = ASSOCIATION_BY_ID.get(type_id) if isinstance(type_id, int) else None
            if known is None or known[0] != t.name:
                raise HubSpotError(400, f"{type_id} is not a valid association type id for {t.name}",
                                   "VALIDATION_ERROR", sub_category="crm.associations.INVALID_ASSOCIATION_TYPE",
                                   context={"typeId": [str(type_id)], "fromObjectType": [t.name]})
            target = object_type(known[1])
            if not to_id.isdigit() or sim.store.get(target, int(to_id)) is None:
                raise HubSpotError(400, f"One or more associations are invalid: {target.singular} {to_id} "
                                        f"does not exist", "VALIDATION_ERROR",
                                   context={"id": [to_id], "toObjectType": [target.name]})
            out.append((target.name, int(to_id), known[2]))
    return out


def _written_view(sim: Sim, t: ObjectType, row: Row, written: dict[str, str]) -> dict[str, Any]:
    names = list(dict.fromkeys([*DEFAULT_PROPERTIES[t.name], *written]))
    return object_json(t.name, row, names, sim.store.defs[t.name])


def _batch_answer(sim: Sim, started: str, results: list[dict[str, Any]], errors: list[dict[str, Any]],
                  ok_status: int = 200) -> Response:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                            "completedAt": _now_iso(sim)}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return json_response(body, 207)
    return json_response(body, ok_status)


def _page_faults(sim: Sim, request: Request, kind_key: tuple[str, str], body: dict[str, Any],
                 current_after: str) -> dict[str, Any]:
    """The route-specific faults of list and search answers (``repeat_page``, ``loop_cursor``, ``wrong_shape``)."""
    method, path = request.method, request.url.path
    previous = sim.last_pages.get(kind_key)
    sim.last_pages[kind_key] = body
    if previous is not None and sim.faults.fire("repeat_page", method, path):
        return previous
    if body.get("paging") and sim.faults.fire("loop_cursor", method, path):
        body = {**body, "paging": {"next": {**body["paging"]["next"], "after": current_after}}}
    rule = sim.faults.fire("wrong_shape", method, path)
    if rule is not None and body.get("results"):
        results = [dict(r) for r in body["results"]]
        victim = results[rule._rng.randrange(len(results))]
        if rule._rng.random() < 0.5:
            victim.pop("properties", None)
        else:
            victim["properties"] = [[k, v] for k, v in victim.get("properties", {}).items()]
        body = {**body, "results": results}
    return body


# ------------------------------------------------------------------ OAuth


@router.post("/oauth/v1/token")
@router.post("/oauth/v3/token")
async def token(request: Request) -> Response:
    sim = _sim(request)
    raw = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(raw, keep_blank_values=True))
    return json_response(sim.auth.exchange(form))


@router.get("/oauth/v1/access-tokens/{access_token}")
async def access_token_info(request: Request, access_token: str) -> Response:
    return json_response(_sim(request).auth.token_info(access_token))


# ------------------------------------------------------------------ objects: basic


@router.get("/crm/v3/objects/{object_type_raw}")
async def list_objects(request: Request, object_type_raw: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    q = request.query_params
    limit = _limit_param(request, 10, LIST_LIMIT, listed=True)
    after = q.get("after", "")
    if after and not after.isdigit():
        raise HubSpotError(400, f"Invalid paging cursor: {after}", "VALIDATION_ERROR", context={"after": [after]})
    rows = sim.store.list_page(t, int(after or 0), limit, _bool_param(request, "archived"))
    page = rows[:limit]
    wanted = _list_param(request, "properties")
    defs = sim.store.defs[t.name]
    results = [object_json(t.name, r, wanted, defs) for r in page]
    history = _list_param(request, "propertiesWithHistory")
    if history:
        results = [with_history(o, history) for o in results]
    _with_associations(sim, t, page, results, _list_param(request, "associations"))
    body: dict[str, Any] = {"results": results}
    if len(rows) > limit:
        nxt = str(rows[limit][0])
        body["paging"] = {"next": {"after": nxt, "link": f"{str(request.base_url).rstrip('/')}"
                                                          f"/crm/v3/objects/{t.name}?after={nxt}"}}
    body = _page_faults(sim, request, ("list", t.name), body, after or str(page[0][0] if page else 0))
    return json_response(body)


@router.get("/crm/v3/objects/{object_type_raw}/{object_id}")
async def get_object(request: Request, object_type_raw: str, object_id: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    archived = _bool_param(request, "archived")
    rid = sim.store.resolve_id(t, object_id, request.query_params.get("idProperty"))
    row = sim.store.get(t, rid, archived) if rid is not None else None
    if row is None and rid is not None and not archived:
        survivor = sim.store.survivor_of(rid)  # a merged-away id answers with the record it was merged into
        row = sim.store.get(t, survivor) if survivor is not None else None
    if row is None:
        raise object_not_found(object_id)
    obj = object_json(t.name, row, _list_param(request, "properties"), sim.store.defs[t.name])
    history = _list_param(request, "propertiesWithHistory")
    if history:
        obj = with_history(obj, history)
    _with_associations(sim, t, [row], [obj], _list_param(request, "associations"))
    return json_response(obj)


@router.post("/crm/v3/objects/{object_type_raw}")
async def create_object(request: Request, object_type_raw: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    body = await _object_input(request)
    props, created = _validated(sim, t, body.get("properties", {}), creating=True)
    links = _create_associations(sim, t, body.get("associations"))
    with sim.store.transaction():
        row = sim.store.create(t, props, created, links)
    return json_response(_written_view(sim, t, row, props), 201)


@router.patch("/crm/v3/objects/{object_type_raw}/{object_id}")
async def update_object(request: Request, object_type_raw: str, object_id: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    body = await _object_input(request)
    props, created = _validated(sim, t, body.get("properties", {}), creating=False)
    rid = sim.store.resolve_id(t, object_id, request.query_params.get("idProperty"))
    row = sim.store.get(t, rid) if rid is not None else None
    if row is None:
        raise object_not_found(object_id)
    with sim.store.transaction():
        new = sim.store.update(t, row, props, created)
    return json_response(_written_view(sim, t, new, props))


@router.delete("/crm/v3/objects/{object_type_raw}/{object_id}")
async def archive_object(request: Request, object_type_raw: str, object_id: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    if object_id.isdigit():
        with sim.store.transaction():
            sim.store.archive(t, int(object_id))
    return Response(status_code=204)  # HubSpot answers 204 for unknown ids too


# ------------------------------------------------------------------ objects: search


@router.post("/crm/v3/objects/{object_type_raw}/search")
async def search_objects(request: Request, object_type_raw: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    plan = parse_search(await read_json(request), sim.store.defs[t.name])
    total, rows = sim.store.search(t, plan)
    defs = sim.store.defs[t.name]
    results = [object_json(t.name, r, plan.properties, defs) for r in rows]
    body: dict[str, Any] = {"total": total, "results": results}
    nxt = plan.after + len(rows)
    if rows and nxt < total:
        # At the cap HubSpot still hands out after=10000, and refuses it on the next call.
        body["paging"] = {"next": {"after": str(nxt)}}
    body = _page_faults(sim, request, ("search", t.name), body, str(plan.after))
    return json_response(body)


# ------------------------------------------------------------------ objects: batch


@router.post("/crm/v3/objects/{object_type_raw}/batch/read")
async def batch_read(request: Request, object_type_raw: str) -> Response:
    batch = await _batch(request, object_type_raw)
    sim, t, body = batch.sim, batch.t, batch.body
    if not isinstance(body.get("propertiesWithHistory"), list):
        # HubSpot's published BatchReadInputSimplePublicObjectId marks it required: clients send [] (NOTES.md)
        raise HubSpotError(400, "Invalid input JSON on line 1: propertiesWithHistory is required (send [] for none)",
                           "VALIDATION_ERROR", context={"propertiesWithHistory": ["required"]})
    id_property = body.get("idProperty")
    archived = _bool_param(request, "archived")
    wanted = body.get("properties") or None
    history = body.get("propertiesWithHistory") or None
    if history and len(batch.items) > 50:
        raise HubSpotError(400, "The maximum number of inputs supported in a batch request for property "
                                "histories is 50. Please reduce the number of items and try again",
                           "VALIDATION_ERROR")
    raw_ids = [str(i.get("id", "")) for i in batch.items]
    resolved = {raw: sim.store.resolve_id(t, raw, id_property) for raw in dict.fromkeys(raw_ids)}
    rows = sim.store.get_many(t, [r for r in resolved.values() if r is not None], archived)
    if not archived:  # merged-away ids answer with their survivor (once per survivor, as HubSpot dedupes)
        for raw, rid in list(resolved.items()):
            if rid is not None and rid not in rows:
                survivor = sim.store.survivor_of(rid)
                if survivor is not None and survivor not in resolved.values():
                    resolved[raw] = survivor
                    rows.update(sim.store.get_many(t, [survivor]))
    defs = sim.store.defs[t.name]
    results, missing = [], []
    for raw, rid in resolved.items():
        row = rows.get(rid) if rid is not None else None
        if row is None:
            missing.append(raw)
            continue
        obj = object_json(t.name, row, wanted, defs)
        results.append(with_history(obj, history) if history else obj)
    return _batch_answer(sim, batch.started, results, _not_found(t, missing))


@router.post("/crm/v3/objects/{object_type_raw}/batch/create")
async def batch_create(request: Request, object_type_raw: str) -> Response:
    batch = await _batch(request, object_type_raw)
    sim, t = batch.sim, batch.t
    prepared, problems = [], []
    for item in batch.items:
        v = checked(sim, t, item.get("properties", {}), True)
        problems.extend(v.errors)
        prepared.append((v.properties, v.created_ms, item.get("associations")))
    if problems:  # HubSpot refuses the whole batch when any input is invalid
        raise property_errors(problems)
    links = [_create_associations(sim, t, a) for _, _, a in prepared]
    with sim.store.transaction():
        rows = [sim.store.create(t, p, c, lk) for (p, c, _), lk in zip(prepared, links, strict=True)]
    results = [_written_view(sim, t, r, p) for r, (p, _, _) in zip(rows, prepared, strict=True)]
    return _batch_answer(sim, batch.started, results, [], ok_status=201)


@router.post("/crm/v3/objects/{object_type_raw}/batch/update")
async def batch_update(request: Request, object_type_raw: str) -> Response:
    batch = await _batch(request, object_type_raw, unique_ids=True)
    sim, t = batch.sim, batch.t
    prepared, problems = [], []
    for item in batch.items:
        v = checked(sim, t, item.get("properties", {}), False)
        problems.extend(v.errors)
        prepared.append((str(item.get("id", "")), item.get("idProperty"), v.properties, v.created_ms))
    if problems:
        raise property_errors(problems)
    results, missing = [], []
    with sim.store.transaction():
        for raw, id_property, props, created in prepared:
            rid = sim.store.resolve_id(t, raw, id_property)
            row = sim.store.get(t, rid) if rid is not None else None
            if row is None:
                missing.append(raw)
                continue
            results.append(_written_view(sim, t, sim.store.update(t, row, props, created), props))
    return _batch_answer(sim, batch.started, results, _not_found(t, missing))


@router.post("/crm/v3/objects/{object_type_raw}/batch/upsert")
async def batch_upsert(request: Request, object_type_raw: str) -> Response:
    batch = await _batch(request, object_type_raw, unique_ids=True)
    sim, t = batch.sim, batch.t
    defs = sim.store.defs[t.name]
    prepared, problems = [], []
    for item in batch.items:
        id_property = item.get("idProperty") or "hs_object_id"
        problem = id_property_error(t, defs, id_property)
        if problem is not None:
            raise problem
        value = str(item.get("id", ""))
        existing = sim.store.find_unique(t, id_property, value) if value else None
        v = checked(sim, t, item.get("properties", {}), existing is None)
        problems.extend(v.errors)
        if not value:
            problems.append({"isValid": False, "message": f"{id_property} value (id) is required for upsert",
                             "error": "INVALID_INPUT", "name": id_property})
        props = {**v.properties, id_property: value}
        prepared.append((id_property, value, props, v.created_ms))
    if problems:
        raise property_errors(problems)
    results = []
    with sim.store.transaction():
        for id_property, value, props, created in prepared:
            rid = sim.store.find_unique(t, id_property, value)
            row = sim.store.get(t, rid) if rid is not None else None
            if row is None:
                new_row = sim.store.create(t, props, created, op="upserted")
                results.append({**_written_view(sim, t, new_row, props), "new": True})
            else:
                new_row = sim.store.update(t, row, props, created, op="upserted")
                results.append({**_written_view(sim, t, new_row, props), "new": False})
    return _batch_answer(sim, batch.started, results, [])


@router.post("/crm/v3/objects/{object_type_raw}/batch/archive")
async def batch_archive(request: Request, object_type_raw: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    inputs = _inputs(await read_json(request))
    with sim.store.transaction():
        for item in inputs:
            raw = str(item.get("id", "")) if isinstance(item, dict) else ""
            if raw.isdigit():
                sim.store.archive(t, int(raw))
    return Response(status_code=204)


# ------------------------------------------------------------------ associations v4


def _pair(from_raw: str, to_raw: str) -> tuple[ObjectType, ObjectType]:
    f, to = object_type(from_raw), object_type(to_raw)
    if (f.name, to.name) not in ASSOCIATION_TYPES:
        raise HubSpotError(400, f"{f.name} to {to.name} is not a valid association between these object types",
                           "VALIDATION_ERROR", sub_category="crm.associations.INVALID_ASSOCIATION_TYPE",
                           context={"fromObjectType": [f.name], "toObjectType": [to.name]})
    return f, to


def _default_results(f: ObjectType, to: ObjectType, from_id: int, to_id: int) -> list[dict[str, Any]]:
    there, back = ASSOCIATION_TYPES[(f.name, to.name)][0], ASSOCIATION_TYPES[(to.name, f.name)][0]
    return [
        {"from": {"id": str(from_id)}, "to": {"id": str(to_id)},
         "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": there}},
        {"from": {"id": str(to_id)}, "to": {"id": str(from_id)},
         "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": back}},
    ]


def _require(sim: Sim, t: ObjectType, raw: str) -> int:
    if not raw.isdigit() or sim.store.get(t, int(raw)) is None:
        raise object_not_found(raw)
    return int(raw)


@router.put("/crm/v4/objects/{from_raw}/{from_id}/associations/default/{to_raw}/{to_id}")
async def associate_default(request: Request, from_raw: str, from_id: str, to_raw: str, to_id: str) -> Response:
    sim = _sim(request)
    started = _now_iso(sim)
    f, to = _pair(from_raw, to_raw)
    a, b = _require(sim, f, from_id), _require(sim, to, to_id)
    with sim.store.transaction():
        sim.store.associate(f.name, a, to.name, b)
    return _batch_answer(sim, started, _default_results(f, to, a, b), [])


@router.get("/crm/v4/objects/{from_raw}/{from_id}/associations/{to_raw}")
async def list_associations(request: Request, from_raw: str, from_id: str, to_raw: str) -> Response:
    sim = _sim(request)
    f, to = _pair(from_raw, to_raw)
    q = request.query_params
    limit = _limit_param(request, 500, 500)
    after = q.get("after", "")
    links = sim.store.associations([int(from_id)], to.name).get(int(from_id), []) if from_id.isdigit() else []
    if after.isdigit():
        links = [x for x in links if x[0] >= int(after)]
    page = links[:limit]
    # HubSpot answers toObjectId as a number and label null for unlabeled types (the spec says strings).
    labels = sim.store.labels([int(from_id)], to.name) if page else {}
    body: dict[str, Any] = {"results": [{"toObjectId": to_id, "associationTypes": association_types_v4(
        f.name, to.name, primary, labels.get((int(from_id), to_id), ()))} for to_id, primary in page]}
    if len(links) > limit:
        body["paging"] = {"next": {"after": str(links[limit][0])}}
    return json_response(body)


async def _association_batch(
    request: Request, from_raw: str, to_raw: str
) -> tuple[Sim, str, ObjectType, ObjectType, list[dict[str, Any]]]:
    """A v4 association batch call: simulator, start time, the object-type pair and the inputs as objects."""
    sim = _sim(request)
    started = _now_iso(sim)
    f, to = _pair(from_raw, to_raw)
    inputs = _inputs(await read_json(request), ASSOC_BATCH_LIMIT)
    return sim, started, f, to, [i if isinstance(i, dict) else {} for i in inputs]


@router.post("/crm/v4/associations/{from_raw}/{to_raw}/batch/read")
async def batch_read_associations(request: Request, from_raw: str, to_raw: str) -> Response:
    sim, started, f, to, items = await _association_batch(request, from_raw, to_raw)
    raw_ids = list(dict.fromkeys(str(i.get("id", "")) for i in items))
    ids = [int(r) for r in raw_ids if r.isdigit()]
    found = sim.store.associations(ids, to.name)
    labels = sim.store.labels(ids, to.name) if ids else {}
    results, errors = [], []
    for raw in raw_ids:
        links = found.get(int(raw), []) if raw.isdigit() else []
        if not links:
            errors.append(standard_error(f"No {to.singular} is associated with {f.singular} {raw}.",
                                         "OBJECT_NOT_FOUND", {"fromObjectId": [raw], "toObjectType": [to.name]},
                                         sub_category="crm.associations.NO_ASSOCIATIONS_FOUND"))
            continue
        results.append({"from": {"id": raw}, "to": [
            {"toObjectId": to_id, "associationTypes": association_types_v4(
                f.name, to.name, primary, labels.get((int(raw), to_id), ()))}
            for to_id, primary in links]})
    return _batch_answer(sim, started, results, errors)


@router.post("/crm/v4/associations/{from_raw}/{to_raw}/batch/associate/default")
async def batch_associate_default(request: Request, from_raw: str, to_raw: str) -> Response:
    sim, started, f, to, items = await _association_batch(request, from_raw, to_raw)
    pairs: list[tuple[int, int]] = []
    for item in items:
        fr = item.get("from", {})
        tt = item.get("to", {})
        pairs.append((_require(sim, f, str(fr.get("id", ""))), _require(sim, to, str(tt.get("id", "")))))
    results: list[dict[str, Any]] = []
    with sim.store.transaction():
        for a, b in pairs:
            sim.store.associate(f.name, a, to.name, b)
            results.extend(_default_results(f, to, a, b))
    return _batch_answer(sim, started, results, [])


# ------------------------------------------------------------------ owners, properties, pipelines


def _owner_json(e: Any, team_names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    team_id, team_name = team_names.get(e.department_id, ("0", ""))
    created = iso_ms(PORTAL_CREATED_MS)
    return {"id": e.owner_id, "email": e.email, "type": "PERSON", "firstName": e.name[1:], "lastName": e.name[:1],
            "userId": int(e.owner_id) - 69_000_000, "userIdIncludingInactive": int(e.owner_id) - 69_000_000,
            "createdAt": created, "updatedAt": created, "archived": False,
            "teams": [{"id": team_id, "name": team_name, "primary": True}]}


@router.get("/crm/v3/owners")
@router.get("/crm/v3/owners/")
async def owners(request: Request) -> Response:
    sim = _sim(request)
    q = request.query_params
    limit = _limit_param(request, 100, 500)
    teams = {d.department_id: (str(i + 1), d.name) for i, d in enumerate(DEPARTMENTS)}
    people = sorted(sim.store.owners(), key=lambda e: int(e.owner_id))
    if _bool_param(request, "archived"):
        people = []
    email = q.get("email")
    if email:
        people = [e for e in people if e.email.lower() == email.strip().lower()]
    after = q.get("after", "")
    start = int(after) if after.isdigit() else 0
    page = people[start:start + limit]
    body: dict[str, Any] = {"results": [_owner_json(e, teams) for e in page]}
    if start + limit < len(people):
        nxt = str(start + limit)
        body["paging"] = {"next": {"after": nxt, "link": f"{str(request.base_url).rstrip('/')}"
                                                          f"/crm/v3/owners?after={nxt}"}}
    return json_response(body)


@router.get("/crm/v3/owners/{owner_id}")
async def owner(request: Request, owner_id: str) -> Response:
    sim = _sim(request)
    teams = {d.department_id: (str(i + 1), d.name) for i, d in enumerate(DEPARTMENTS)}
    for e in sim.store.owners():
        if e.owner_id == owner_id:
            return json_response(_owner_json(e, teams))
    raise object_not_found(owner_id)


@router.get("/crm/v3/properties/{object_type_raw}")
async def properties(request: Request, object_type_raw: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    created = iso_ms(PORTAL_CREATED_MS)
    return json_response({"results": [property_json(p, created) for p in sim.store.defs[t.name].values()]})


@router.get("/crm/v3/properties/{object_type_raw}/{name}")
async def property_one(request: Request, object_type_raw: str, name: str) -> Response:
    sim = _sim(request)
    t = object_type(object_type_raw)
    p = sim.store.defs[t.name].get(name)
    if p is None:
        raise HubSpotError(404, f"Unable to find property {name} on object type {t.type_id}", "OBJECT_NOT_FOUND",
                           context={"propertyName": [name]})
    return json_response(property_json(p, iso_ms(PORTAL_CREATED_MS)))


def _pipeline() -> dict[str, Any]:
    created = iso_ms(PORTAL_CREATED_MS)
    stages = [{"id": v, "label": lbl, "displayOrder": i, "createdAt": created, "updatedAt": created,
               "archived": False, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
               "metadata": {"isClosed": "true" if v in ("closedwon", "closedlost", "delivered") else "false",
                            "probability": prob}}
              for i, (v, lbl, prob) in enumerate(DEAL_STAGES)]
    return {"id": "default", "label": "销售渠道", "displayOrder": 0, "stages": stages, "createdAt": created,
            "updatedAt": created, "archived": False}


@router.get("/crm/v3/pipelines/{object_type_raw}")
async def pipelines(request: Request, object_type_raw: str) -> Response:
    t = object_type(object_type_raw)
    return json_response({"results": [_pipeline()] if t.name == "deals" else []})


@router.get("/crm/v3/pipelines/{object_type_raw}/{pipeline_id}")
async def pipeline(request: Request, object_type_raw: str, pipeline_id: str) -> Response:
    t = object_type(object_type_raw)
    if t.name != "deals" or pipeline_id != "default":
        raise HubSpotError(404, f"Unable to find pipeline {pipeline_id}", "OBJECT_NOT_FOUND")
    return json_response(_pipeline())
