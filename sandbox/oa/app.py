"""The OA simulator's HTTP app: Feishu approval v4 + contact + auth routes.

Vendor routes answer exactly as Feishu does (paths, ``{code, msg, data}``
envelope, HTTP 400 for business errors, 429 + ``x-ogw-ratelimit-*`` for
frequency limits); the admin API lives under ``/_sim`` (``sandbox.oa.admin``).
Where the OpenAPI file (``sandbox/specs/feishu``) and the vendor's documented
behaviour differ, the route follows the vendor and says so in a comment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from sandbox.common.faults import FaultInjector, FaultMiddleware, Message, Receive, Scope, Send
from sandbox.common.world import World
from sandbox.launcher import OA_APP_ID, OA_APP_SECRET
from sandbox.oa import errors as E
from sandbox.oa.attachments import URL_TTL_S, ApprovalFiles, with_urls
from sandbox.oa.comments import detail_comments
from sandbox.oa.definitions import DEFAULT_DICTIONARY, Definition, load_definitions
from sandbox.oa.errors import FeishuError, field_violation, param_invalid
from sandbox.oa.events import EventDispatcher
from sandbox.oa.forms import FormError, parse_form
from sandbox.oa.history import choose_approver, detail, new_history, transition
from sandbox.oa.limits import RateLimiter, TokenBook
from sandbox.oa.seed import instance_rows, people_rows
from sandbox.oa.store import Store

log = logging.getLogger("sandbox.oa")
SH = timedelta(hours=8)
DEFAULT_SEED = 20261126  # the people of World(seed) when the simulator starts without --seed
VERIFICATION_TOKEN = "bridge-local-verification-token"  # ruff: ignore[hardcoded-password-string] - documented simulator default
QUERY_STATUS = {"PENDING": ["PENDING"], "RECALL": ["CANCELED"], "REJECT": ["REJECTED"], "DELETED": ["DELETED"],
                "APPROVED": ["APPROVED"], "ALL": None}
USER_ID_TYPES = ("open_id", "user_id", "union_id")


@dataclass
class SimConfig:
    db: Path
    app_id: str = OA_APP_ID
    app_secret: str = OA_APP_SECRET
    seed: int | None = None
    rate_limits: str = "feishu"
    token_ttl: int = 7200
    # An expired tenant_access_token: Feishu's generic error table documents
    # 99991663 ("tenant_access_token 已过期" is its first cause) and reserves
    # 99991677 for user tokens; --expired-token-code 99991677 switches.
    expired_token_code: int = E.TOKEN_INVALID
    # uuid idempotency. Feishu's create doc: "同一个 uuid 只能用于创建一个审批实例，
    # 如果冲突则创建失败并返回错误码 60012"; its approval FAQ: "首次设置 uuid 成功创建
    # 审批实例后，后续传相同的 uuid 继续创建，接口会报错". So by default *any* reuse
    # of a uuid answers 60012, and a client that retried an ambiguous create
    # must read the instance back with GET /instances/{uuid} (documented).
    # uuid_replay="return" answers an identical replay with the existing
    # instance_code (code 0) and only a conflicting one with 60012.
    uuid_replay: str = "conflict"
    # instances (list): "单次查询时间范围不要超过10小时"; 0 turns the check off.
    max_list_window_hours: float = 10
    # instances/query "结果可能存在延迟": instances younger than this are not found yet.
    query_lag_ms: int = 0
    dictionary: Path = DEFAULT_DICTIONARY
    verification_token: str = VERIFICATION_TOKEN
    event_retries: int = 3
    # Download URLs of attachment / image widgets: "返回的 url 有效期为12小时" (upload doc).
    file_url_ttl_s: int = URL_TTL_S


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=dict(headers or {}),
                    media_type="application/json; charset=utf-8")


def ok(data: Any) -> Response:
    return _json({"code": 0, "msg": "success", "data": data})


def encode_token(start_ms: int, code: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([start_ms, code])).decode().rstrip("=")


def decode_token(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        start_ms, code = orjson.loads(raw)
        if not isinstance(start_ms, int) or not isinstance(code, str):
            raise ValueError("shape")
        return start_ms, code
    except (ValueError, TypeError) as exc:
        raise param_invalid("page_token is invalid") from exc


FIRST_PAGE = (-1, "")  # a token that points at the beginning (loop_cursor)


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    created_api: Counter[str] = field(default_factory=Counter)
    created_admin: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    route_faults: Counter[str] = field(default_factory=Counter)
    tokens_issued_base: int = 0


class SimState:
    """Everything the routes share: storage, definitions, tokens, limits, faults, clock."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.store = Store(cfg.db)
        self.files = ApprovalFiles(cfg.db)
        self.definitions: dict[str, Definition] = load_definitions(cfg.dictionary)
        self.by_key = {d.key: d for d in self.definitions.values()}
        self.tokens = TokenBook(cfg.app_id, cfg.app_secret, cfg.token_ttl)
        self.limiter = RateLimiter(cfg.rate_limits)
        self.injector = FaultInjector()
        self.events = EventDispatcher(cfg.app_id, cfg.verification_token, retries=cfg.event_retries)
        self.stats = Stats()
        self.clock_offset_ms = 0
        self.people: dict[str, dict[str, Any]] = {}
        self._by_open_id: dict[str, dict[str, Any]] = {}
        self._by_union_id: dict[str, dict[str, Any]] = {}
        self._by_email: dict[str, dict[str, Any]] = {}
        self._by_mobile: dict[str, dict[str, Any]] = {}
        self.startup_config = self.config_view()
        self._bootstrap()

    # ------------------------------------------------------------ set-up
    def _bootstrap(self) -> None:
        stored_seed = self.store.get_meta("world_seed")
        if not self.store.all_users() or (self.cfg.seed is not None and stored_seed != str(self.cfg.seed)
                                          and self.store.count_instances() == 0):
            self.load_people(World(seed=self.cfg.seed if self.cfg.seed is not None else DEFAULT_SEED))
        self.reload_people()
        if self.cfg.seed is not None and self.store.count_instances() == 0:
            self.seed_world(World(seed=self.cfg.seed, now_ms=self.now_ms()))

    def load_people(self, world: World) -> None:
        people, depts = people_rows(world)
        self.store.replace_people(people, depts)
        self.store.set_meta("world_seed", str(world.seed))
        self.reload_people()

    def reload_people(self) -> None:
        rows = self.store.all_users()
        self.people = {u["user_id"]: u for u in rows}
        self._by_open_id = {u["open_id"]: u for u in rows}
        self._by_union_id = {u["union_id"]: u for u in rows}
        self._by_email = {u["email"].strip().lower(): u for u in rows}
        self._by_mobile = {u["mobile"]: u for u in rows}

    def seed_world(self, world: World, replace: bool = True) -> int:
        """Load the world's people and OA history (chunked; safe to run in a worker thread)."""
        self.load_people(world)
        if replace:
            self.store.delete_all_instances()
        return self.store.insert_instances(instance_rows(world), ignore_existing=not replace)

    # ------------------------------------------------------------ clock & people
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def user(self, ident: str | None, id_type: str = "user_id") -> dict[str, Any] | None:
        if not ident:
            return None
        if id_type == "open_id":
            return self._by_open_id.get(ident)
        if id_type == "union_id":
            return self._by_union_id.get(ident)
        return self.people.get(ident)

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return self._by_email.get(email.strip().lower())

    def user_by_mobile(self, mobile: str) -> dict[str, Any] | None:
        m = mobile.strip().replace(" ", "").replace("-", "")
        if m.startswith("+86"):
            m = m[3:]
        return self._by_mobile.get(m)

    def definition(self, approval_code: Any) -> Definition:
        if not isinstance(approval_code, str) or not approval_code:
            raise param_invalid("approval_code is required")
        defn = self.definitions.get(approval_code)
        if defn is None:
            raise FeishuError(E.APPROVAL_NOT_FOUND)
        return defn

    # ------------------------------------------------------------ auth & limits
    def authorize(self, request: Request, route: str) -> str:
        """The app id of the request's tenant token; raises Feishu's token / frequency errors."""
        header = request.headers.get("authorization", "").strip()
        if not header:
            raise FeishuError(E.TOKEN_MISSING)
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise FeishuError(E.TOKEN_MISSING if scheme.lower() == "bearer" else E.TOKEN_INVALID)
        tok = self.tokens.lookup(value.strip())
        if tok is None or tok.kind != "tenant":
            raise FeishuError(E.TOKEN_INVALID)
        if tok.expires_ms <= self.now_ms():
            raise FeishuError(self.cfg.expired_token_code)
        hit = self.limiter.check(route, tok.app_id)
        if hit is not None:
            limit, reset = hit
            self.stats.rate_limited[route] += 1
            raise FeishuError(E.RATE_LIMITED, status=429, headers={
                "x-ogw-ratelimit-limit": str(limit), "x-ogw-ratelimit-reset": str(reset)})
        return tok.app_id

    # ------------------------------------------------------------ instances
    def next_serial(self, start_ms: int) -> str:
        """审批单编号: date (Asia/Shanghai) + daily counter, unique in the tenant."""
        day = (datetime.fromtimestamp(start_ms / 1000, tz=UTC) + SH).strftime("%Y%m%d")
        top = self.store.max_serial(day)
        n = int(top[8:]) + 1 if top and top[8:].isdigit() else 1
        return f"{day}{n:04d}"

    def create_instance(self, defn: Definition, applicant: Mapping[str, Any], widgets: list[dict[str, Any]],
                        uuid: str | None, request_hash: str | None, start_ms: int, origin: str) -> dict[str, Any]:
        code = _instance_code()
        approver = choose_approver(applicant, self.people)
        tasks, timeline = new_history(code, defn, start_ms, applicant, approver)
        with self.store.tx():
            row = {
                "instance_code": code, "approval_code": defn.code, "uuid": uuid,
                "uuid_norm": uuid.lower() if uuid else None, "user_id": applicant["user_id"],
                "open_id": applicant["open_id"], "department_id": applicant["department_id"], "status": "PENDING",
                "serial_number": self.next_serial(start_ms), "start_ms": start_ms, "end_ms": 0, "updated_ms": start_ms,
                "form_json": json.dumps(widgets, ensure_ascii=False, separators=(",", ":")),
                "request_hash": request_hash, "tasks_json": json.dumps(tasks, ensure_ascii=False),
                "timeline_json": json.dumps(timeline, ensure_ascii=False), "origin": origin,
            }
            self.store.insert_instance(row)
        self.emit(row, "PENDING", start_ms)
        return row

    def apply(self, row: Mapping[str, Any], action: str, comment: str | None = None,
              actor: Mapping[str, Any] | None = None, form_json: str | None = None) -> dict[str, Any]:
        defn = self.definitions[row["approval_code"]]
        now = self.now_ms()
        values = transition(row, action, defn, self.people, now, comment, actor)
        if form_json is not None:
            values["form_json"] = form_json
        self.store.update_instance(row["instance_code"], values)
        updated = {**row, **values}
        self.emit(updated, updated["status"], now)
        return updated

    def emit(self, row: Mapping[str, Any], status: str, at_ms: int) -> None:
        if self.events.url or self.events.mode == "long_connection":
            self.events.emit(row["approval_code"], row["instance_code"], status, at_ms, row.get("uuid"),
                             self.store.subscribed())

    def detail(self, row: Mapping[str, Any], base_url: str = "") -> dict[str, Any]:
        """The instance detail; file widgets carry download URLs minted now (under ``base_url``)."""
        out = detail(row, self.definitions[row["approval_code"]], self.people)
        out["comment_list"] = [*out.get("comment_list", []), *detail_comments(self, row["instance_code"])]
        out["form"] = with_urls(out["form"], self.files, base_url, self.now_ms(), self.cfg.file_url_ttl_s)
        return out

    # ------------------------------------------------------------ config
    def config_view(self) -> dict[str, Any]:
        return {"rate_limits": self.limiter.profile, "rate_limit_overrides": {},
                "uuid_replay": self.cfg.uuid_replay, "query_lag_ms": self.cfg.query_lag_ms,
                "max_list_window_hours": self.cfg.max_list_window_hours,
                "expired_token_code": self.cfg.expired_token_code, "token_ttl": self.tokens.ttl_s,
                "file_url_ttl_s": self.cfg.file_url_ttl_s}

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        if "uuid_replay" in changes:
            if changes["uuid_replay"] not in ("conflict", "return"):
                raise ValueError("uuid_replay must be conflict or return")
            self.cfg.uuid_replay = str(changes["uuid_replay"])
        if "query_lag_ms" in changes:
            self.cfg.query_lag_ms = int(changes["query_lag_ms"])
        if "max_list_window_hours" in changes:
            self.cfg.max_list_window_hours = float(changes["max_list_window_hours"])
        if "expired_token_code" in changes:
            if int(changes["expired_token_code"]) not in (E.TOKEN_INVALID, E.TOKEN_EXPIRED):
                raise ValueError("expired_token_code must be 99991663 or 99991677")
            self.cfg.expired_token_code = int(changes["expired_token_code"])
        if "token_ttl" in changes:
            self.tokens.ttl_s = int(changes["token_ttl"])
        if "file_url_ttl_s" in changes:
            self.cfg.file_url_ttl_s = int(changes["file_url_ttl_s"])
        if "rate_limits" in changes or "rate_limit_overrides" in changes:
            overrides = changes.get("rate_limit_overrides") or {}
            self.limiter.configure(str(changes.get("rate_limits", self.limiter.profile)),
                                   {k: [tuple(r) for r in v] for k, v in overrides.items()})
        view = self.config_view()
        view["rate_limit_overrides"] = changes.get("rate_limit_overrides") or {}
        return view


def _instance_code() -> str:
    raw = os.urandom(16).hex().upper()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


def _request_hash(defn: Definition, user_id: str, department_id: str, widgets: list[dict[str, Any]]) -> str:
    canon = json.dumps([defn.code, user_id, department_id, [[w["id"], w["value"]] for w in widgets]],
                       ensure_ascii=True, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise param_invalid("the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise param_invalid("the request body must be a JSON object")
    return body


def _int_param(value: Any, name: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise param_invalid(f"{name} must be a millisecond timestamp") from exc


def _page_size(request: Request, default: int, low: int, high: int) -> int:
    raw = request.query_params.get("page_size")
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError as exc:
        raise field_violation("page_size", f"must be an integer between {low} and {high}") from exc
    if not low <= size <= high:
        raise field_violation("page_size", f"the value must be between {low} and {high}")
    return size


def _user_id_type(request: Request) -> str:
    kind = request.query_params.get("user_id_type") or "open_id"
    if kind not in USER_ID_TYPES:
        raise field_violation("user_id_type", "must be one of open_id, user_id, union_id")
    return kind


def _as_type(user: Mapping[str, Any], id_type: str) -> str:
    return str(user.get(id_type) or "")


def _post_route(api: FastAPI, path: str, handler: Callable[[Request, str], Awaitable[Response]], variant: str) -> None:
    """Register ``POST path`` answered by ``handler(request, variant)``: one handler, several Feishu endpoints."""

    async def route(request: Request) -> Response:
        return await handler(request, variant)

    api.add_api_route(path, route, methods=["POST"], name=f"{handler.__name__.strip('_')}_{variant}")


# ---------------------------------------------------------------- ASGI layers
class StatsMiddleware:
    """Outermost layer: counts every request by route template and its answer."""

    def __init__(self, app: Any, state: SimState, api: FastAPI) -> None:
        self.app = app
        self.state = state
        self.api = api

    def route_key(self, scope: Scope) -> str:
        for route in self.api.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        return f"{scope['method']} (unknown)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        key = self.route_key(scope)
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        self.state.stats.requests[key] += 1
        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            # A simulator bug still answers like Feishu (500 + body) and keeps the connection usable.
            log.exception("unhandled error on %s", key)
            if not status:
                body, headers = feishu_error_body(500, exc.__class__.__name__)
                await watch({"type": "http.response.start", "status": 500,
                             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]
                             + [(b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            self.state.stats.responses[f"{key} -> {status[0] if status else 'no response'}"] += 1


def feishu_error_body(status: int, message: str) -> tuple[bytes, dict[str, str]]:
    """Error bodies of injected faults, as Feishu's gateway renders them."""
    lid = E.log_id()
    headers = {"x-tt-logid": lid, "content-type": "application/json; charset=utf-8"}
    if status == 429:
        code, msg = E.RATE_LIMITED, E.MESSAGES[E.RATE_LIMITED]
        headers.update({"x-ogw-ratelimit-limit": "100", "x-ogw-ratelimit-reset": "1"})
    elif status >= 500:
        code, msg = E.INTERNAL_ERROR, f"internal error ({message})"
    elif status in (401, 403):
        code, msg = E.TOKEN_INVALID, E.MESSAGES[E.TOKEN_INVALID]
    else:
        code, msg = E.SERVICE_ERROR, E.MESSAGES[E.SERVICE_ERROR]
    return orjson.dumps({"code": code, "msg": msg, "error": {"log_id": lid}}), headers


# ---------------------------------------------------------------- the app
def create_app(cfg: SimConfig) -> FastAPI:
    from sandbox.oa import attachments, comments
    from sandbox.oa.admin import admin_router
    from sandbox.oa.longconn import longconn_router
    from sandbox.oa.performance import performance_router

    state = SimState(cfg)
    api = FastAPI(title="OA simulator (Feishu approval v4)", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.sim = state

    @api.exception_handler(FeishuError)
    async def _feishu_error(request: Request, exc: FeishuError) -> Response:
        lid = E.log_id()
        state.stats.errors[str(exc.code)] += 1
        return _json(exc.body(lid), exc.status, {"x-tt-logid": lid, **exc.headers})

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_sim"):
            return _json({"detail": exc.detail}, exc.status_code)
        code = E.NOT_FOUND_PATH if exc.status_code == 404 else E.METHOD_MISMATCH
        return _json({"code": code, "msg": E.MESSAGES[code]}, exc.status_code)

    # ------------------------------------------------------------ auth v3
    async def _token(request: Request, kind: str) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            body = {}
        body = body if isinstance(body, dict) else {}
        failure = state.tokens.check_credentials(body.get("app_id"), body.get("app_secret"))
        if failure == "param":
            raise FeishuError(E.TOKEN_PARAM_INVALID)
        if failure == "secret":
            raise FeishuError(E.TOKEN_SECRET_INVALID)
        token, expire = state.tokens.issue("tenant", state.now_ms())
        if kind == "tenant":
            return _json({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire})
        app_token, app_expire = state.tokens.issue("app", state.now_ms())
        return _json({"code": 0, "msg": "ok", "app_access_token": app_token, "expire": app_expire,
                      "tenant_access_token": token})

    for kind in ("tenant", "app"):
        _post_route(api, f"/open-apis/auth/v3/{kind}_access_token/internal", _token, kind)

    # ------------------------------------------------------------ approvals
    @api.get("/open-apis/approval/v4/approvals/{approval_code}")
    async def get_approval(approval_code: str, request: Request) -> Response:
        state.authorize(request, "approvals.get")
        return ok(state.definition(approval_code).api_body())

    @api.post("/open-apis/approval/v4/approvals/{approval_code}/subscribe")
    async def subscribe(approval_code: str, request: Request) -> Response:
        state.authorize(request, "approvals.subscribe")
        defn = state.definition(approval_code)
        if not state.store.subscribe(defn.code):
            raise FeishuError(E.SUBSCRIPTION_EXISTED)
        return ok({})

    @api.post("/open-apis/approval/v4/approvals/{approval_code}/unsubscribe")
    async def unsubscribe(approval_code: str, request: Request) -> Response:
        state.authorize(request, "approvals.unsubscribe")
        state.store.unsubscribe(state.definition(approval_code).code)
        return ok({})

    # ------------------------------------------------------------ instances
    @api.post("/open-apis/approval/v4/instances")
    async def create_instance(request: Request) -> Response:
        state.authorize(request, "instances.create")
        body = await _body(request)
        defn = state.definition(body.get("approval_code"))
        user_id, open_id = body.get("user_id"), body.get("open_id")
        if not user_id and not open_id:
            raise param_invalid("one of user_id or open_id is required")
        applicant = state.user(user_id, "user_id") if user_id else state.user(open_id, "open_id")
        if applicant is None:
            raise FeishuError(E.USER_NOT_FOUND)
        dept = body.get("department_id")
        if dept not in (None, "") and dept != applicant["department_id"]:
            raise param_invalid(f"department_id {dept} is not a department of the applicant")
        uuid = body.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or not 1 <= len(uuid) <= 64):
            raise field_violation("uuid", "length must be between 1 and 64 characters")
        try:
            widgets = parse_form(body.get("form"), defn, state.files.kind)
        except FormError as exc:
            raise param_invalid(str(exc)) from exc
        req_hash = _request_hash(defn, applicant["user_id"], applicant["department_id"], widgets)
        with state.store.tx():
            if uuid:
                existing = state.store.get_by_uuid(uuid.lower())
                if existing is not None:
                    if state.cfg.uuid_replay == "return" and existing["request_hash"] == req_hash:
                        return ok({"instance_code": existing["instance_code"],
                                   "instance_link": _link(request, existing["instance_code"])})
                    raise FeishuError(E.UUID_CONFLICT)
            row = state.create_instance(defn, applicant, widgets, uuid or None, req_hash, state.now_ms(), "api")
        state.stats.created_api[defn.code] += 1
        # The spec requires instance_link in the answer; the vendor doc shows only
        # instance_code. Both are returned (the link points at this simulator).
        return ok({"instance_code": row["instance_code"], "instance_link": _link(request, row["instance_code"])})

    @api.get("/open-apis/approval/v4/instances")
    async def list_instances(request: Request) -> Response:
        state.authorize(request, "instances.list")
        q = request.query_params
        page_size = _page_size(request, 100, 1, 100)
        if not q.get("approval_code"):
            raise field_violation("approval_code", "is required")
        for name in ("start_time", "end_time"):
            if not q.get(name):
                raise field_violation(name, "is required")
        defn = state.definition(q["approval_code"])
        start, end = _int_param(q["start_time"], "start_time"), _int_param(q["end_time"], "end_time")
        if end < start:
            raise param_invalid("end_time must not be before start_time")
        max_h = state.cfg.max_list_window_hours
        if max_h and end - start > max_h * 3_600_000:
            raise param_invalid(f"the time range of one query must not exceed {max_h:g} hours")
        token = q.get("page_token") or ""
        after = decode_token(token) if token else None
        codes = state.store.list_codes(defn.code, start, end, after, page_size + 1)
        has_more = len(codes) > page_size
        codes = codes[:page_size]
        next_token = encode_token(*codes[-1]) if has_more else ""
        has_more, next_token = _listing_faults(state, request, token, has_more, next_token)
        # The spec marks page_token required; the vendor doc says it is only
        # returned with has_more. An empty string satisfies both readings.
        return ok({"instance_code_list": [c for _, c in codes], "page_token": next_token, "has_more": has_more})

    @api.post("/open-apis/approval/v4/instances/query")
    async def query_instances(request: Request) -> Response:
        state.authorize(request, "instances.query")
        page_size = _page_size(request, 10, 5, 200)
        id_type = _user_id_type(request)
        body = await _body(request)
        keys = ("user_id", "approval_code", "instance_code", "instance_external_id", "group_external_id")
        if not any(body.get(k) for k in keys):
            raise param_invalid("one of user_id, approval_code, instance_code, instance_external_id, "
                                "group_external_id is required")
        approval_code = body.get("approval_code") or None
        defn = state.definition(approval_code) if approval_code else None
        instance_code = body.get("instance_code") or None
        if instance_code and state.store.get_instance(str(instance_code)) is None:
            raise FeishuError(E.INSTANCE_NOT_FOUND)
        status = body.get("instance_status") or "ALL"
        if status not in QUERY_STATUS:
            raise param_invalid(f"instance_status must be one of {', '.join(QUERY_STATUS)}")
        t_from, t_to = body.get("instance_start_time_from"), body.get("instance_start_time_to")
        if (t_from in (None, "")) != (t_to in (None, "")):
            raise param_invalid("instance_start_time_from and instance_start_time_to must be set together")
        start_from = start_to = None
        if t_from not in (None, ""):
            start_from, start_to = _int_param(t_from, "instance_start_time_from"), _int_param(t_to, "instance_start_time_to")
            if start_to < start_from or start_to - start_from > 30 * 86_400_000:
                raise param_invalid("the query time span must be between 0 and 30 days")
        user_filter = None
        if body.get("user_id"):
            user = state.user(str(body["user_id"]), id_type)
            user_filter = user["user_id"] if user else "\x00no-such-user"
        token = request.query_params.get("page_token") or ""
        after = decode_token(token) if token else None
        only_external = not (approval_code or instance_code or body.get("user_id"))
        lag = state.cfg.query_lag_ms
        if only_external:  # external ids match third-party approvals only, never native instances
            rows: list[dict[str, Any]] = []
            total = 0
        else:
            rows, total = state.store.query(
                approval_code=defn.code if defn else None, instance_code=instance_code, user_id=user_filter,
                statuses=QUERY_STATUS[status], start_from=start_from, start_to=start_to, after=after,
                limit=page_size + 1, visible_before_ms=state.now_ms() - lag if lag else None)
        has_more = len(rows) > page_size
        rows = rows[:page_size]
        next_token = encode_token(rows[-1]["start_ms"], rows[-1]["instance_code"]) if has_more else ""
        has_more, next_token = _listing_faults(state, request, token, has_more, next_token)
        items = []
        for r in rows:
            d = state.definitions[r["approval_code"]]
            applicant = state.people.get(r["user_id"]) or {"user_id": r["user_id"], "open_id": r["open_id"]}
            items.append({
                "approval": {"code": d.code, "name": d.name, "is_external": False,
                             "external": {"batch_cc_read": False},
                             "approval_id": str(int(hashlib.sha1(d.code.encode()).hexdigest()[:15], 16)),  # ruff: ignore[hashlib-insecure-hash-function]
                             "icon": ""},
                "group": {"external_id": "", "name": ""},
                "instance": {"code": r["instance_code"], "external_id": "", "user_id": _as_type(applicant, id_type),
                             "start_time": str(r["start_ms"]), "end_time": str(r["end_ms"] or 0),
                             "status": r["status"].lower(), "title": "", "extra": "", "serial_id": r["serial_number"],
                             "link": {"pc_link": "", "mobile_link": ""}},
            })
        data: dict[str, Any] = {"count": total, "instance_list": items, "has_more": has_more}
        if has_more:  # "当 has_more 为 true 时，会同时返回新的 page_token，否则不返回"
            data["page_token"] = next_token
        return ok(data)

    @api.post("/open-apis/approval/v4/instances/cancel")
    async def cancel_instance(request: Request) -> Response:
        state.authorize(request, "instances.cancel")
        id_type = _user_id_type(request)
        body = await _body(request)
        row = _instance_for(state, body)
        user = state.user(str(body.get("user_id") or ""), id_type)
        if not body.get("user_id"):
            raise param_invalid("user_id is required")
        if user is None or user["user_id"] != row["user_id"]:
            # Only the applicant can withdraw (Feishu FAQ).
            raise FeishuError(E.NO_PERMISSION, "only the applicant can withdraw the instance", status=403)
        if row["status"] != "PENDING":
            # Withdrawing an approved instance needs the definition's "允许撤销 x 天内通过的审批"; not set here.
            raise param_invalid(f"the instance is {row['status']}: only PENDING instances can be withdrawn")
        state.apply(row, "withdraw", actor=user)
        return ok({})

    @api.get("/open-apis/approval/v4/instances/{instance_id}")
    async def get_instance(instance_id: str, request: Request) -> Response:
        state.authorize(request, "instances.get")
        _user_id_type(request)
        row = state.store.get_instance(instance_id)
        if row is None:
            raise FeishuError(E.INSTANCE_NOT_FOUND)
        return ok(state.detail(row, str(request.base_url).rstrip("/")))

    # ------------------------------------------------------------ tasks
    async def _task_action(request: Request, action: str) -> Response:
        state.authorize(request, f"tasks.{action}")
        id_type = _user_id_type(request)
        body = await _body(request)
        row = _instance_for(state, body)
        if not body.get("user_id") or not body.get("task_id"):
            raise param_invalid("user_id and task_id are required")
        user = state.user(str(body["user_id"]), id_type)
        tasks = state.detail(row)["task_list"]
        task = next((t for t in tasks if t["id"] == str(body["task_id"])), None)
        comment = body.get("comment") if isinstance(body.get("comment"), str) else None
        if action == "resubmit":
            if task is None or row["status"] not in ("REJECTED", "CANCELED"):
                raise FeishuError(E.TASK_NOT_FOUND)
            if user is None or user["user_id"] != row["user_id"]:
                raise FeishuError(E.NO_PERMISSION, status=403)
            try:
                widgets = parse_form(body.get("form"), state.definitions[row["approval_code"]], state.files.kind)
            except FormError as exc:
                raise param_invalid(str(exc)) from exc
            state.apply(row, "resubmit", comment, user, json.dumps(widgets, ensure_ascii=False, separators=(",", ":")))
            return ok({})
        if task is None or task["status"] != "PENDING" or row["status"] != "PENDING":
            raise FeishuError(E.TASK_NOT_FOUND)
        if user is None or user["user_id"] != task["user_id"]:
            raise FeishuError(E.NO_PERMISSION, status=403)
        state.apply(row, action, comment, user)
        return ok({})

    for action in ("approve", "reject", "resubmit"):
        _post_route(api, f"/open-apis/approval/v4/tasks/{action}", _task_action, action)

    # ------------------------------------------------------------ contact v3
    @api.post("/open-apis/contact/v3/users/batch_get_id")
    async def batch_get_id(request: Request) -> Response:
        state.authorize(request, "users.batch_get_id")
        id_type = _user_id_type(request)
        body = await _body(request)
        emails, mobiles = body.get("emails") or [], body.get("mobiles") or []
        for name, values in (("emails", emails), ("mobiles", mobiles)):
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise field_violation(name, "must be an array of strings")
            if len(values) > 50:
                raise field_violation(name, "the maximum length is 50")
        status = {"is_frozen": False, "is_resigned": False, "is_activated": True, "is_exited": False,
                  "is_unjoin": False}
        out: list[dict[str, Any]] = []
        for email in emails:
            user = state.user_by_email(email)
            out.append({"user_id": _as_type(user, id_type), "email": email, "status": status} if user
                       else {"email": email})  # unknown: no user_id, as Feishu answers
        for mobile in mobiles:
            user = state.user_by_mobile(mobile)
            out.append({"user_id": _as_type(user, id_type), "mobile": mobile, "status": status} if user
                       else {"mobile": mobile})
        return ok({"user_list": out})

    @api.get("/open-apis/contact/v3/users/batch")
    async def users_batch(request: Request) -> Response:
        """Users by id (contact v3 ``users/batch``, ≤ 50 ``user_ids``); unknown ids are left out, as Feishu does."""
        state.authorize(request, "users.batch")
        id_type = _user_id_type(request)
        ids = request.query_params.getlist("user_ids")
        if not ids:
            raise field_violation("user_ids", "is required")
        if len(ids) > 50:
            raise field_violation("user_ids", "the maximum length is 50")
        items = []
        for ident in dict.fromkeys(ids):
            user = state.user(ident, id_type)
            if user is not None:
                items.append({"user_id": user["user_id"], "open_id": user["open_id"], "union_id": user.get("union_id"),
                              "name": user["name"], "department_ids": [user["department_id"]],
                              "status": {"is_frozen": False, "is_resigned": not user.get("active", True),
                                         "is_activated": True, "is_exited": False, "is_unjoin": False}})
        return ok({"items": items})

    api.include_router(performance_router(state))  # 绩效: sandbox.oa.performance
    api.include_router(admin_router(state))
    api.include_router(longconn_router(state))  # events over Feishu's long connection: sandbox.oa.longconn
    attachments.install(api, state)
    comments.install(api, state)
    api.add_middleware(FaultMiddleware, injector=state.injector, error_body=feishu_error_body)
    api.add_middleware(StatsMiddleware, state=state, api=api)
    return api


def _link(request: Request, code: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/_sim/instances/{code}"


def _instance_for(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    defn = state.definition(body.get("approval_code"))
    code = body.get("instance_code")
    if not isinstance(code, str) or not code:
        raise param_invalid("instance_code is required")
    row = state.store.get_instance(code)
    if row is None:
        raise FeishuError(E.INSTANCE_NOT_FOUND)
    if row["approval_code"] != defn.code:
        raise param_invalid("the instance does not belong to approval_code")
    return row


def _listing_faults(state: SimState, request: Request, token: str, has_more: bool, next_token: str,
                    ) -> tuple[bool, str]:
    """Route-specific faults of the listing endpoints (``repeat_page``, ``loop_cursor``)."""
    method, path = request.method, request.url.path
    if has_more and state.injector.fire("repeat_page", method, path):
        # The next page token points at this very page: the client reads it twice.
        state.stats.route_faults["repeat_page"] += 1
        return True, token or encode_token(*FIRST_PAGE)
    if state.injector.fire("loop_cursor", method, path):
        # The cursor goes back to the first page: a client that does not notice loops forever.
        state.stats.route_faults["loop_cursor"] += 1
        return True, encode_token(*FIRST_PAGE)
    return has_more, next_token
