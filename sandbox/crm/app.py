"""The CRM simulator's ASGI application: state, middlewares and the app factory.

Layers, outermost first: request statistics, fault injection
(``sandbox.common.faults``), authentication + rate limits (vendor paths
only), then the FastAPI app with the vendor routes (``sandbox.crm.api``) and
the admin routes (``sandbox.crm.admin``). Handlers are ``async`` and call
SQLite directly on the event loop: one request at a time touches the
database, which keeps SQLite single-threaded; only seeding runs in a worker
thread on its own connection.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.common.faults import ASGIApp, FaultInjector, FaultMiddleware, Message, Receive, Scope, Send
from sandbox.crm.auth import Auth, AuthConfig, RateLimits
from sandbox.crm.errors import JSON_TYPE, HubSpotError, error_body
from sandbox.crm.files import FileStore
from sandbox.crm.store import Clock, Store

log = logging.getLogger("sandbox.crm")


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)  # "METHOD /path/{id}" -> n
    responses: Counter[str] = field(default_factory=Counter)  # status -> n

    def reset(self) -> None:
        self.requests.clear()
        self.responses.clear()


@dataclass
class Sim:
    """Everything one running simulator holds."""

    store: Store
    auth: Auth
    limits: RateLimits
    faults: FaultInjector
    clock: Clock
    files: FileStore
    stats: Stats = field(default_factory=Stats)
    started: float = field(default_factory=time.time)
    last_pages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, db_path: Path | str, auth: AuthConfig, rate_limits: bool = True, token_ttl_s: int = 1800,
               burst: int = 110, search_per_s: int = 5) -> Sim:
        clock = Clock()
        auth.token_ttl_s = token_ttl_s
        store = Store(db_path, clock)
        return cls(store=store, auth=Auth(auth, clock),
                   limits=RateLimits(clock, enabled=rate_limits, burst=burst, search_per_s=search_per_s),
                   faults=FaultInjector(), clock=clock, files=FileStore(store.db, Path(db_path), clock))


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=orjson.dumps(payload), status_code=status, media_type=JSON_TYPE, headers=headers)


async def _send_error(send: Send, err: HubSpotError) -> None:
    body, headers = err.render()
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": err.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _route_key(method: str, path: str) -> str:
    """``POST /crm/v3/objects/deals/search``; numeric ids and tokens become placeholders."""
    parts = path.split("/")
    if path.startswith("/oauth/v1/access-tokens/") and len(parts) > 4:
        parts[4] = "{token}"
    return method + " " + "/".join("{id}" if p.isdigit() else p for p in parts)


class StatsMiddleware:
    def __init__(self, app: ASGIApp, stats: Stats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        self.stats.requests[_route_key(scope["method"], scope["path"])] += 1

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.responses[str(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting)


GATED_PREFIXES = ("/crm/", "/files/", "/marketing/")


class GateMiddleware:
    """Bearer authentication and rate limits on the CRM and Files API paths; rate-limit headers on every answer."""

    def __init__(self, app: ASGIApp, sim: Sim) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GATED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.sim.store.seeding:
            # A bulk seed holds SQLite's write lock for a minute: answer a retryable 503 rather than
            # block the event loop (and hand out half-loaded data).
            await _send_error(send, HubSpotError(503, "The portal is being seeded; retry shortly.",
                                                 "INTERNAL_ERROR", headers={"Retry-After": "5"}))
            return
        header = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                header = v.decode("latin-1")
                break
        try:
            token = self.sim.auth.authenticate(header)
            search = scope["method"] == "POST" and scope["path"].endswith("/search")
            limit_headers = self.sim.limits.check(token.key, search)
        except HubSpotError as err:
            await _send_error(send, err)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in limit_headers.items()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(sim: Sim) -> ASGIApp:
    """The ASGI app uvicorn serves (FastAPI inside the three middlewares)."""
    from sandbox.crm import admin, api, files_api, lifecycle, marketing, webhooks

    app = FastAPI(title="HubSpot CRM v3 simulator", docs_url="/_sim/docs", redoc_url=None,
                  openapi_url="/_sim/openapi.json")
    app.state.sim = sim

    @app.exception_handler(HubSpotError)
    async def hubspot_error(_request: Request, err: HubSpotError) -> Response:
        body, headers = err.render()
        return Response(content=body, status_code=err.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        if err.status_code == 404:
            e = HubSpotError(404, f"Unable to route {request.method} {request.url.path}: no such endpoint",
                             "OBJECT_NOT_FOUND")
        else:
            e = HubSpotError(err.status_code, str(err.detail))
        body, headers = e.render()
        return Response(content=body, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError) -> Response:
        e = HubSpotError(400, "Invalid input: " + "; ".join(str(x.get("msg")) for x in err.errors()),
                         "VALIDATION_ERROR")
        body, headers = e.render()
        return Response(content=body, status_code=400, headers=headers)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, err: Exception) -> Response:
        log.exception("unhandled error: %s", err)
        e = HubSpotError(500, "internal error", "INTERNAL_ERROR")
        body, headers = e.render()
        return Response(content=body, status_code=500, headers=headers)

    app.include_router(admin.router)
    app.include_router(marketing.router)  # before api: it refuses writes to read-only feedback submissions
    app.include_router(api.router)
    app.include_router(lifecycle.router)
    app.include_router(files_api.router)
    webhooks.install(app, sim)  # signed webhook deliveries after committed writes (admin: /_sim/webhooks)
    gated = GateMiddleware(app, sim)
    faulty = FaultMiddleware(gated, sim.faults, error_body)
    return StatsMiddleware(faulty, sim.stats)
