"""The simulator's admin API under ``/_sim`` (not a HubSpot path; no token, no rate limit, no faults).

Health and statistics, reset and bulk seeding, a dump of objects for tests,
people's actions (edit a deal N times, create, archive), token expiry and
revocation, the server clock, rate-limit settings and fault rules.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.crm.api import object_type, read_json
from sandbox.crm.app import Sim, json_response
from sandbox.crm.errors import HubSpotError
from sandbox.crm.model import ObjectType, resolve_type
from sandbox.crm.seed import SeedRequest, seed_database
from sandbox.crm.views import full_json

router = APIRouter(prefix="/_sim")


def _sim(request: Request) -> Sim:
    sim: Sim = request.app.state.sim
    return sim


def _bad(message: str) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR")


async def _body(request: Request) -> dict[str, Any]:
    if not await request.body():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise _bad("the admin API takes a JSON object")
    return body


def _int(body: dict[str, Any], name: str, default: int | None = None) -> int:
    value = body.get(name, default)
    if value is None or isinstance(value, bool):
        raise _bad(f"{name} is required and must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"{name} must be an integer") from None


# ------------------------------------------------------------------ health, stats, reset, seed


@router.get("/health")
async def health(request: Request) -> Response:
    sim = _sim(request)
    return json_response({"status": "seeding" if sim.store.seeding else "ok", "simulator": "hubspot-crm",
                          "uptime_s": round(time.time() - sim.started, 1)})


@router.get("/stats")
async def stats(request: Request) -> Response:
    sim = _sim(request)
    writes: dict[str, dict[str, int]] = {}
    for (t, op), n in sorted(sim.store.writes.items()):
        writes.setdefault(t, {})[op] = n
    return json_response({
        "requests": dict(sim.stats.requests), "responses": dict(sim.stats.responses), "writes": writes,
        "tokens_issued": sim.auth.issued["access_token"], "faults_fired": dict(sim.faults.stats),
        "rate_limited": dict(sim.limits.limited), "objects": sim.store.counts(),
    })


@router.post("/stats/reset")
async def stats_reset(request: Request) -> Response:
    sim = _sim(request)
    sim.stats.reset()
    sim.store.writes.clear()
    sim.faults.stats.clear()
    sim.limits.limited.clear()
    sim.auth.issued.clear()
    return json_response({"ok": True})


async def _seed(sim: Sim, req: SeedRequest) -> dict[str, Any]:
    if sim.store.seeding:
        raise HubSpotError(409, "a seed is already running", "CONFLICT")
    sim.store.seeding = True
    try:
        result = await asyncio.to_thread(seed_database, sim.store.path, req)
    finally:
        sim.store.seeding = False
        sim.store.set_world_seed(req.seed)
        sim.store.invalidate()
        sim.last_pages.clear()
    return result


@router.post("/reset")
async def reset(request: Request) -> Response:
    """Empty portal: no objects, no faults, clock back to real time, revocations undone, stats zeroed.
    With ``{"seed": N}`` the default demo world of seed N is loaded afterwards."""
    sim = _sim(request)
    body = await _body(request)
    _idle(sim)
    sim.store.reset()
    sim.files.reset()
    sim.faults.clear()
    sim.clock.offset_ms = 0
    sim.clock.frozen_ms = None
    sim.auth.restore()
    sim.limits.calls.clear()
    sim.limits.searches.clear()
    sim.last_pages.clear()
    sim.stats.reset()
    sim.faults.stats.clear()
    out: dict[str, Any] = {"ok": True}
    if body.get("seed") is not None:
        out["seeded"] = await _seed(sim, SeedRequest(seed=_int(body, "seed")))
    return json_response(out)


@router.post("/seed")
async def seed(request: Request) -> Response:
    """Replace all objects with a generated world: ``{seed, companies, contacts_per_company, deals,
    dirty_share, now_ms}`` (sizes default to the demo world's)."""
    sim = _sim(request)
    body = await _body(request)
    try:
        req = SeedRequest(seed=_int(body, "seed", sim.store.world_seed), companies=_int(body, "companies", 200),
                          contacts_per_company=_int(body, "contacts_per_company", 2), deals=_int(body, "deals", 400),
                          dirty_share=float(body.get("dirty_share", 0.05)),
                          now_ms=None if body.get("now_ms") is None else _int(body, "now_ms"))
    except (TypeError, ValueError):
        raise _bad("dirty_share must be a number") from None
    if req.companies < 1 and (req.deals > 0 or req.contacts_per_company > 0):
        raise _bad("deals and contacts need at least one company")
    return json_response(await _seed(sim, req))


# ------------------------------------------------------------------ objects dump


@router.get("/objects/{object_type_raw}")
async def dump(request: Request, object_type_raw: str) -> Response:
    """Ids and every property, paged by id (``after``, ``limit`` ≤ 10000, ``archived`` true|false|any)."""
    sim = _sim(request)
    t = object_type(object_type_raw)
    q = request.query_params
    limit = int(q.get("limit", "1000"))
    if not 1 <= limit <= 10_000:
        raise _bad("limit must be between 1 and 10000")
    after = q.get("after", "0")
    archived_raw = q.get("archived", "false").lower()
    archived = None if archived_raw == "any" else archived_raw == "true"
    rows = sim.store.dump(t, int(after) if after.isdigit() else 0, limit, archived)
    body: dict[str, Any] = {"results": [full_json(t.name, r) for r in rows[:limit]]}
    if len(rows) > limit:
        body["paging"] = {"next": {"after": str(rows[limit][0])}}
    return json_response(body)


# ------------------------------------------------------------------ acting as people do


def _idle(sim: Sim) -> None:
    """Admin writes wait for no seed: refuse them while one runs (it holds the write lock)."""
    if sim.store.seeding:
        raise HubSpotError(409, "a seed is running; retry when /_sim/health says ok", "CONFLICT")


async def _act_on_type(request: Request) -> tuple[Sim, dict[str, Any], ObjectType]:
    """A person's act on records of one type: no seed running, a JSON object naming ``object_type``."""
    sim = _sim(request)
    _idle(sim)
    body = await _body(request)
    return sim, body, _act_type(body)


def _act_type(body: dict[str, Any]) -> ObjectType:
    raw = body.get("object_type")
    if not isinstance(raw, str):
        raise _bad("object_type is required (companies, contacts, deals, notes, meetings, tasks)")
    return object_type(raw)


def _props(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _bad("properties must be an object")
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


@router.post("/act/update")
async def act_update(request: Request) -> Response:
    """A person edits a record ``times`` times (default 1); each edit is its own write with its own
    ``hs_lastmodifieddate``. ``properties`` is one object, or a list applied in turn. Not validated:
    people's edits may hold values the API would refuse (dirty data)."""
    sim, body, t = await _act_on_type(request)
    object_id = _int(body, "id")
    times = _int(body, "times", 1)
    if not 1 <= times <= 10_000:
        raise _bad("times must be between 1 and 10000")
    raw = body.get("properties", {})
    versions = [_props(p) for p in raw] if isinstance(raw, list) else [_props(raw)]
    if not versions:
        raise _bad("properties must not be an empty list")
    stamps: list[int] = []
    with sim.store.transaction():
        row = sim.store.get(t, object_id)
        if row is None:
            raise HubSpotError(404, f"no live {t.singular} {object_id}", "OBJECT_NOT_FOUND")
        for n in range(times):
            row = sim.store.update(t, row, versions[n % len(versions)])
            stamps.append(row[2])
    return json_response({"id": str(object_id), "writes": times, "modified_ms": stamps,
                          "object": full_json(t.name, row)})


@router.post("/act/create")
async def act_create(request: Request) -> Response:
    """A person creates a record: ``{object_type, properties, associations: {companies: [ids], ...}}``."""
    sim, body, t = await _act_on_type(request)
    props = _props(body.get("properties", {}))
    links: list[tuple[str, int, bool]] = []
    for to_raw, ids in (body.get("associations") or {}).items():
        to = resolve_type(to_raw)
        if to is None or not isinstance(ids, list):
            raise _bad(f"unknown association target {to_raw}")
        links.extend((to.name, int(i), True) for i in ids)
    with sim.store.transaction():
        row = sim.store.create(t, props, None, links)
    return json_response(full_json(t.name, row), 201)


def _act_on_ids(body: dict[str, Any], act: Any) -> list[str]:
    """Apply ``act(id) -> truthy`` to ``id | ids`` in one transaction; the ids it acted on."""
    done = []
    for raw in body.get("ids") or [body.get("id")]:
        if raw is not None and str(raw).isdigit() and act(int(raw)):
            done.append(str(raw))
    return done


@router.post("/act/archive")
async def act_archive(request: Request) -> Response:
    sim, body, t = await _act_on_type(request)
    with sim.store.transaction():
        archived = _act_on_ids(body, lambda i: sim.store.archive(t, i))
    return json_response({"archived": archived})


@router.post("/act/restore")
async def act_restore(request: Request) -> Response:
    """A person restores archived records from HubSpot's recycle bin (its UI only; HubSpot has no restore
    API): ``{object_type, id | ids}`` → the restored ids. ``hs_lastmodifieddate`` does not move."""
    sim, body, t = await _act_on_type(request)
    with sim.store.transaction():
        restored = _act_on_ids(body, lambda i: sim.store.restore(t, i) is not None)
    return json_response({"restored": restored})


@router.post("/act/label")
async def act_label(request: Request) -> Response:
    """A portal admin defines an association label: ``{from_type, to_type, label, name}`` → both type ids."""
    sim = _sim(request)
    body = await _body(request)
    f, to = resolve_type(str(body.get("from_type"))), resolve_type(str(body.get("to_type")))
    label, name = str(body.get("label") or "").strip(), str(body.get("name") or "").strip()
    if f is None or to is None or not label or not name:
        raise _bad("from_type, to_type, label and name are required")
    with sim.store.transaction():
        there, back = sim.store.define_label(f.name, to.name, label, name)
    return json_response({"typeId": there, "inverseTypeId": back, "label": label, "category": "USER_DEFINED"})


@router.post("/act/associate")
async def act_associate(request: Request) -> Response:
    """A person links two records: ``{from_type, from_id, to_type, to_id, primary?, labels?: [typeId]}``;
    ``remove: true`` unlinks them instead."""
    sim = _sim(request)
    _idle(sim)
    body = await _body(request)
    f, to = resolve_type(str(body.get("from_type"))), resolve_type(str(body.get("to_type")))
    if f is None or to is None:
        raise _bad("from_type and to_type are required")
    a, b = _int(body, "from_id"), _int(body, "to_id")
    if sim.store.get(f, a) is None or sim.store.get(to, b) is None:
        raise HubSpotError(404, f"no live {f.singular} {a} or {to.singular} {b}", "OBJECT_NOT_FOUND")
    with sim.store.transaction():
        if body.get("remove"):
            removed = sim.store.remove_association(a, b)
            return json_response({"removed": removed})
        sim.store.associate(f.name, a, to.name, b, bool(body.get("primary")))
        for type_id in body.get("labels") or []:
            sim.store.add_label(a, b, int(type_id))
    return json_response({"from": str(a), "to": str(b), "primary": bool(body.get("primary"))})


# ------------------------------------------------------------------ tokens, clock, rate limits


@router.post("/tokens/expire")
async def tokens_expire(request: Request) -> Response:
    return json_response({"expired": _sim(request).auth.expire_all()})


@router.post("/tokens/revoke")
async def tokens_revoke(request: Request) -> Response:
    """Revoke ``{refresh_token}`` (default: the configured one), ``{client_id}`` or ``{private_app: true}``."""
    sim = _sim(request)
    body = await _body(request)
    return json_response(sim.auth.revoke(body.get("refresh_token"), body.get("client_id"),
                                         bool(body.get("private_app"))))


@router.post("/tokens/restore")
async def tokens_restore(request: Request) -> Response:
    _sim(request).auth.restore()
    return json_response({"ok": True})


def _clock_json(sim: Sim) -> Response:
    return json_response({"offset_ms": sim.clock.offset_ms, "frozen_ms": sim.clock.frozen_ms,
                          "now_ms": sim.clock.now_ms()})


@router.get("/clock")
async def clock_get(request: Request) -> Response:
    return _clock_json(_sim(request))


@router.post("/clock")
async def clock_set(request: Request) -> Response:
    """``{offset_ms}`` sets the skew; ``{advance_ms}`` adds to it; ``{freeze_ms: T}`` stops the clock at T
    (``{freeze_ms: null}`` lets it run again). Writes stay strictly increasing per object while frozen."""
    sim = _sim(request)
    body = await _body(request)
    if "offset_ms" in body:
        sim.clock.offset_ms = _int(body, "offset_ms")
    if "advance_ms" in body:
        sim.clock.offset_ms += _int(body, "advance_ms")
        if sim.clock.frozen_ms is not None:
            sim.clock.frozen_ms += _int(body, "advance_ms")
    if "freeze_ms" in body:
        sim.clock.frozen_ms = None if body["freeze_ms"] is None else _int(body, "freeze_ms")
    return _clock_json(sim)


@router.get("/ratelimits")
async def ratelimits_get(request: Request) -> Response:
    lim = _sim(request).limits
    return json_response({"enabled": lim.enabled, "burst": lim.burst, "window_ms": lim.window_ms,
                          "search_per_s": lim.search_per_s})


@router.put("/ratelimits")
async def ratelimits_set(request: Request) -> Response:
    """Change the limits at run time: ``{enabled, burst, window_ms, search_per_s}`` (windows are cleared)."""
    sim = _sim(request)
    body = await _body(request)
    lim = sim.limits
    if "enabled" in body:
        lim.enabled = bool(body["enabled"])
    for name in ("burst", "window_ms", "search_per_s"):
        if name in body:
            setattr(lim, name, max(1, _int(body, name)))
    lim.calls.clear()
    lim.searches.clear()
    return await ratelimits_get(request)


# ------------------------------------------------------------------ faults


@router.get("/faults")
async def faults_get(request: Request) -> Response:
    return json_response({"rules": _sim(request).faults.rules()})


def _rules(raw: Any) -> list[dict[str, Any]]:
    rules = raw.get("rules", raw) if isinstance(raw, dict) else raw
    if isinstance(rules, dict):
        rules = [rules]
    if not isinstance(rules, list) or not all(isinstance(r, dict) and "kind" in r for r in rules):
        raise _bad("fault rules are objects with at least a kind")
    return rules


@router.put("/faults")
async def faults_put(request: Request) -> Response:
    """Replace all rules: ``{rules: [{kind, path, method, rate, count, status, latency_ms, ...}]}``."""
    sim = _sim(request)
    try:
        sim.faults.set_rules(_rules(await read_json(request)))
    except (TypeError, ValueError) as exc:
        raise _bad(f"invalid fault rule: {exc}") from None
    return json_response({"rules": sim.faults.rules()})


@router.post("/faults")
async def faults_post(request: Request) -> Response:
    """Add one rule (or several)."""
    sim = _sim(request)
    try:
        for rule in _rules(await read_json(request)):
            sim.faults.add_rule(rule)
    except (TypeError, ValueError) as exc:
        raise _bad(f"invalid fault rule: {exc}") from None
    return json_response({"rules": sim.faults.rules()})


@router.delete("/faults")
async def faults_delete(request: Request) -> Response:
    _sim(request).faults.clear()
    return json_response({"rules": []})
