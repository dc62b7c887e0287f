"""Admin API of the OA simulator (``/_sim/...``): not part of Feishu's API.

Health, stats, reset, bulk seeding from ``World``, an instance dump for
tests, people's actions (submit, approve, reject, withdraw, resubmit,
delete), token expiry/revocation, the server clock, fault rules, runtime
configuration and the event callback. No auth, no rate limit, no faults.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sandbox.common.world import World
from sandbox.oa.events import CallbackError
from sandbox.oa.forms import FormError, parse_form
from sandbox.oa.history import ACTIONS, TransitionError

if TYPE_CHECKING:
    from sandbox.oa.app import SimState


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)  # like the vendor routes: refuses lone surrogates
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def admin_router(state: SimState) -> APIRouter:
    from sandbox.oa.app import _json

    r = APIRouter(prefix="/_sim")

    def definition_of(body: dict[str, Any]) -> Any:
        key = body.get("approval") or body.get("approval_code")
        defn = state.by_key.get(str(key)) or state.definitions.get(str(key))
        if defn is None:
            raise HTTPException(404, f"unknown approval {key!r}: use one of {sorted(state.by_key)} or their codes")
        return defn

    def instance_of(body: dict[str, Any]) -> dict[str, Any]:
        code = body.get("instance_code")
        row = state.store.get_instance(str(code)) if code else None
        if row is None:
            raise HTTPException(404, f"instance {code!r} not found")
        return row

    def person(body: dict[str, Any], *, required: bool) -> dict[str, Any] | None:
        if body.get("user_id"):
            user = state.user(str(body["user_id"])) or state.user(str(body["user_id"]), "open_id")
        elif body.get("open_id"):
            user = state.user(str(body["open_id"]), "open_id")
        elif body.get("email"):
            user = state.user_by_email(str(body["email"]))
        else:
            if required:
                raise HTTPException(400, "name the person: user_id, open_id or email")
            return None
        if user is None:
            raise HTTPException(404, "no OA user with that id or e-mail")
        return user

    # ------------------------------------------------------------ health & stats
    @r.get("/health")
    async def health() -> Response:
        return _json({"status": "ok", "service": "oa", "pid": os.getpid(),
                      "uptime_s": round(time.time() - state.started, 1),
                      "instances": state.store.count_instances(), "world_seed": state.store.get_meta("world_seed"),
                      "clock_offset_ms": state.clock_offset_ms})

    @r.get("/stats")
    async def stats() -> Response:
        s = state.stats
        return _json({
            "requests": dict(s.requests), "responses": dict(s.responses), "errors": dict(s.errors),
            "instances_created": {"api": dict(s.created_api), "admin": dict(s.created_admin),
                                  "api_total": sum(s.created_api.values())},
            "instances_created_by_form": {d.key: s.created_api.get(code, 0) for code, d in state.definitions.items()},
            "tokens_issued": state.tokens.issued - s.tokens_issued_base,
            "rate_limited": dict(s.rate_limited),
            "faults_fired": {**dict(state.injector.stats), **dict(s.route_faults)},
            "events": dict(state.events.stats),
        })

    @r.post("/stats/reset")
    async def stats_reset() -> Response:
        from sandbox.oa.app import Stats

        state.stats = Stats(tokens_issued_base=state.tokens.issued)
        state.injector.stats.clear()
        state.events.stats.clear()
        return _json({"reset": True})

    @r.post("/reset")
    async def reset(request: Request) -> Response:
        """Back to a fresh start: no instances, tokens, faults, subscriptions, callback, clock offset."""
        from sandbox.oa.app import Stats

        body = await _body(request)
        await run_in_threadpool(state.store.delete_all_instances)
        state.files.reset()
        state.store.clear_subscriptions()
        state.events.unregister()
        state.injector.clear()
        state.tokens.reset()
        state.clock_offset_ms = 0
        state.configure({**state.startup_config, "rate_limit_overrides": {}})
        state.stats = Stats()
        state.injector.stats.clear()
        state.events.stats.clear()
        seeded = 0
        if body.get("reseed") and state.cfg.seed is not None:
            seeded = await run_in_threadpool(state.seed_world, World(seed=state.cfg.seed, now_ms=state.now_ms()))
        return _json({"reset": True, "seeded": seeded})

    # ------------------------------------------------------------ seeding
    @r.post("/seed")
    async def seed(request: Request) -> Response:
        body = await _body(request)
        try:
            world = World(
                seed=int(body.get("seed", state.cfg.seed if state.cfg.seed is not None else 20261126)),
                companies=int(body.get("companies", 200)), deals=int(body.get("deals", 400)),
                oa_instances=int(body.get("oa_instances", 300)),
                now_ms=int(body["now_ms"]) if body.get("now_ms") is not None else state.now_ms(),
                history_days=int(body.get("history_days", 730)),
                dirty_share=float(body.get("dirty_share", 0.05)),
            )
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, f"bad seed parameters: {exc}") from exc
        started = time.perf_counter()
        inserted = await run_in_threadpool(state.seed_world, world, bool(body.get("replace", True)))
        seconds = time.perf_counter() - started
        return _json({"inserted": inserted, "seconds": round(seconds, 3), "seed": world.seed,
                      "oa_instances": world.n_oa_instances, "now_ms": world.now_ms,
                      "instances": state.store.count_instances()})

    # ------------------------------------------------------------ dump
    @r.get("/instances")
    async def dump(request: Request) -> Response:
        q = request.query_params
        approval = q.get("approval") or q.get("approval_code")
        code = None
        if approval:
            defn = state.by_key.get(approval) or state.definitions.get(approval)
            if defn is None:
                raise HTTPException(404, f"unknown approval {approval!r}")
            code = defn.code
        try:
            offset, limit = int(q.get("offset", 0)), min(int(q.get("limit", 100)), 1000)
        except ValueError as exc:
            raise HTTPException(400, "offset and limit must be integers") from exc
        rows, total = state.store.dump(approval_code=code, status=q.get("status"), user_id=q.get("user_id"),
                                       uuid=q.get("uuid"), origin=q.get("origin"), offset=offset, limit=limit)
        items = [{**state.detail(row), "origin": row["origin"], "updated_ms": row["updated_ms"]} for row in rows]
        return _json({"total": total, "offset": offset, "limit": limit, "items": items})

    @r.get("/instances/{instance_code}")
    async def dump_one(instance_code: str) -> Response:
        row = state.store.get_instance(instance_code)
        if row is None:
            raise HTTPException(404, f"instance {instance_code!r} not found")
        return _json({**state.detail(row), "origin": row["origin"], "updated_ms": row["updated_ms"]})

    @r.get("/users")
    async def users() -> Response:
        return _json({"users": list(state.people.values()), "departments": state.store.all_departments()})

    # ------------------------------------------------------------ people act
    @r.post("/act/submit")
    async def act_submit(request: Request) -> Response:
        """An employee submits a form (optionally back-dated with ``start_time`` ms)."""
        body = await _body(request)
        defn = definition_of(body)
        applicant = person(body, required=True)
        assert applicant is not None
        form = body.get("form", [])
        raw = form if isinstance(form, str) else json.dumps(form, ensure_ascii=False)
        try:
            widgets = parse_form(raw, defn, state.files.kind)
        except FormError as exc:
            raise HTTPException(400, f"bad form: {exc}") from exc
        uuid = body.get("uuid")
        if uuid and state.store.get_by_uuid(str(uuid).lower()) is not None:
            raise HTTPException(409, f"uuid {uuid!r} already used")
        start = int(body["start_time"]) if body.get("start_time") is not None else state.now_ms()
        row = state.create_instance(defn, applicant, widgets, str(uuid) if uuid else None, None, start, "admin")
        state.stats.created_admin[defn.code] += 1
        return _json({"instance_code": row["instance_code"], "serial_number": row["serial_number"],
                      "approval_code": defn.code, "start_time": start})

    async def act(request: Request, action: str) -> Response:
        body = await _body(request)
        row = instance_of(body)
        actor = person(body, required=False)
        form_json = None
        if action == "resubmit" and body.get("form") is not None:
            raw = body["form"] if isinstance(body["form"], str) else json.dumps(body["form"], ensure_ascii=False)
            try:
                widgets = parse_form(raw, state.definitions[row["approval_code"]], state.files.kind)
            except FormError as exc:
                raise HTTPException(400, f"bad form: {exc}") from exc
            form_json = json.dumps(widgets, ensure_ascii=False, separators=(",", ":"))
        comment = body.get("comment") if isinstance(body.get("comment"), str) else None
        try:
            updated = state.apply(row, action, comment, actor, form_json)
        except TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        return _json(state.detail(updated))

    def act_endpoint(action: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await act(request, action)

        return endpoint

    for action in ACTIONS:
        r.add_api_route(f"/act/{action}", act_endpoint(action), methods=["POST"], name=f"act_{action}")

    # ------------------------------------------------------------ tokens & clock
    @r.post("/tokens/expire")
    async def tokens_expire() -> Response:
        return _json({"expired": state.tokens.expire_all(state.now_ms())})

    @r.post("/tokens/revoke")
    async def tokens_revoke() -> Response:
        state.tokens.revoke()
        return _json({"revoked": True})

    @r.post("/tokens/restore")
    async def tokens_restore() -> Response:
        state.tokens.restore()
        return _json({"revoked": False})

    @r.get("/clock")
    async def clock() -> Response:
        return _json({"now_ms": state.now_ms(), "offset_ms": state.clock_offset_ms})

    @r.post("/clock")
    async def set_clock(request: Request) -> Response:
        body = await _body(request)
        try:
            if "offset_ms" in body:
                state.clock_offset_ms = int(body["offset_ms"])
            if "advance_ms" in body:
                state.clock_offset_ms += int(body["advance_ms"])
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, "offset_ms / advance_ms must be integers") from exc
        return _json({"now_ms": state.now_ms(), "offset_ms": state.clock_offset_ms})

    # ------------------------------------------------------------ faults
    @r.get("/faults")
    async def faults() -> Response:
        return _json({"rules": state.injector.rules(), "fired": dict(state.injector.stats)})

    @r.put("/faults")
    async def faults_put(request: Request) -> Response:
        raw = json.loads(await request.body() or b"[]")
        rules = raw.get("rules", []) if isinstance(raw, dict) else raw
        try:
            state.injector.set_rules(list(rules))
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, f"bad fault rule: {exc}") from exc
        return _json({"rules": state.injector.rules()})

    @r.post("/faults")
    async def faults_add(request: Request) -> Response:
        body = await _body(request)
        try:
            rule = state.injector.add_rule(body)
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, f"bad fault rule: {exc}") from exc
        return _json(rule.public())

    @r.delete("/faults")
    async def faults_clear() -> Response:
        state.injector.clear()
        return _json({"rules": []})

    # ------------------------------------------------------------ config & events
    @r.get("/config")
    async def config() -> Response:
        return _json(state.config_view())

    @r.post("/config")
    async def set_config(request: Request) -> Response:
        body = await _body(request)
        try:
            return _json(state.configure(body))
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc

    @r.get("/callback")
    async def callback() -> Response:
        return _json({"url": state.events.url, "all_codes": state.events.all_codes,
                      "subscribed": sorted(state.store.subscribed())})

    @r.post("/callback")
    async def set_callback(request: Request) -> Response:
        body = await _body(request)
        url = body.get("url")
        if not isinstance(url, str):
            raise HTTPException(400, "url is required")
        try:
            state.events.configure(body.get("delivery"))  # bridge events: encrypted mode, delivery faults
            await run_in_threadpool(state.events.register, url, bool(body.get("all_codes", True)),
                                    bool(body.get("verify", True)))
        except CallbackError as exc:
            raise HTTPException(400, str(exc)) from exc
        return _json({"url": url, "all_codes": state.events.all_codes})

    @r.delete("/callback")
    async def clear_callback() -> Response:
        state.events.unregister()
        return _json({"url": None})

    @r.post("/events/flush")
    async def flush() -> Response:
        idle = await run_in_threadpool(state.events.wait_idle, 10.0)
        return _json({"idle": idle, **dict(state.events.stats)})

    return r
