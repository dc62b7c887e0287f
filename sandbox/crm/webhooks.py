"""Webhooks as a HubSpot app receives them: signed (v3), batched, retried with backoff.

Configured through the admin API (``POST /_sim/webhooks``, see :func:`router`).
What changed is captured in one place, below the API: TEMP triggers on the
simulator's own SQLite connection write every committed change of ``objects``
and ``assoc`` to an outbox table (a rolled-back write leaves nothing there, as
the outbox row rolls back with it). After each HTTP request the outbox is
drained on the event-loop thread (the only thread that uses that connection)
into ``object.creation`` / ``object.propertyChange`` (one per changed
property) / ``object.deletion`` / ``object.restore`` / ``object.merge`` /
``object.associationChange`` events, which a worker thread posts in batches
of up to 100 with ``X-HubSpot-Signature-v3`` and ``X-HubSpot-Request-Timestamp``.
Non-2xx answers are retried with exponential backoff (4xx other than 429 are
not, as HubSpot does), ``attemptNumber`` counting up. Delivery faults on
demand: ``drop`` (probability per delivery), ``duplicate`` (copies),
``reorder`` (deliveries held in groups of this size and sent shuffled),
``delay_ms``. Only loopback URLs are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.common.delivery import FaultyOutbox
from sandbox.crm.app import Sim, json_response
from sandbox.crm.model import BY_CODE
from sandbox.crm.store import PORTAL_ID

log = logging.getLogger("sandbox.crm.webhooks")

APP_ID = 4242  # the simulator's OAuth app (sandbox/crm/auth.py answers it for its tokens)
MAX_BATCH = 100
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
OUTBOX = (
    "CREATE TEMP TABLE IF NOT EXISTS webhook_outbox (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
    "object_id INTEGER NOT NULL, type INTEGER NOT NULL, other_id INTEGER, old_props BLOB, new_props BLOB, "
    "at_ms INTEGER NOT NULL)",
    "CREATE TEMP TRIGGER IF NOT EXISTS webhook_created AFTER INSERT ON objects BEGIN "
    "INSERT INTO webhook_outbox (kind, object_id, type, at_ms) VALUES ('creation', new.id, new.type, "
    "new.modified_ms); END",
    "CREATE TEMP TRIGGER IF NOT EXISTS webhook_updated AFTER UPDATE ON objects BEGIN "
    "INSERT INTO webhook_outbox (kind, object_id, type, old_props, new_props, at_ms) VALUES ("
    "CASE WHEN old.archived = 0 AND new.archived = 1 THEN 'deletion' "
    "WHEN old.archived = 1 AND new.archived = 0 THEN 'restore' ELSE 'propertyChange' END, "
    "new.id, new.type, old.props, new.props, max(new.modified_ms, coalesce(new.archived_ms, 0))); END",
    "CREATE TEMP TRIGGER IF NOT EXISTS webhook_assoc_added AFTER INSERT ON assoc BEGIN "
    "INSERT INTO webhook_outbox (kind, object_id, type, other_id, at_ms) VALUES ('associationChange', "
    "new.from_id, new.from_type, new.to_id, CAST(strftime('%s','now') AS INTEGER) * 1000); END",
    "CREATE TEMP TRIGGER IF NOT EXISTS webhook_assoc_removed AFTER DELETE ON assoc BEGIN "
    "INSERT INTO webhook_outbox (kind, object_id, type, other_id, at_ms) VALUES ('associationRemoved', "
    "old.from_id, old.from_type, old.to_id, CAST(strftime('%s','now') AS INTEGER) * 1000); END",
)
DROP = ("DROP TRIGGER IF EXISTS temp.webhook_created", "DROP TRIGGER IF EXISTS temp.webhook_updated",
        "DROP TRIGGER IF EXISTS temp.webhook_assoc_added", "DROP TRIGGER IF EXISTS temp.webhook_assoc_removed",
        "DROP TABLE IF EXISTS temp.webhook_outbox")
OPTIONS = {"url", "client_secret", "app_id", "portal_id", "batch_size", "max_attempts", "backoff_ms", "drop",
           "duplicate", "reorder", "delay_ms", "seed"}


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    source = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


@dataclass
class Settings:
    url: str
    client_secret: str
    app_id: int = APP_ID
    portal_id: int = PORTAL_ID
    batch_size: int = MAX_BATCH
    max_attempts: int = 5
    backoff_ms: int = 200
    drop: float = 0.0
    duplicate: int = 1
    reorder: int = 0
    delay_ms: int = 0


def _settings(body: dict[str, Any]) -> Settings:
    unknown = set(body) - OPTIONS
    if unknown:
        raise ValueError(f"unknown webhook option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
    url, secret = body.get("url"), body.get("client_secret")
    if not isinstance(url, str) or not isinstance(secret, str) or not secret:
        raise ValueError("url and client_secret are required")
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or (host not in LOOPBACK and not host.startswith("127.")):
        raise ValueError(f"webhook URL must be http(s) on a loopback address, not {url!r}")
    fields = {k: v for k, v in body.items() if k in Settings.__dataclass_fields__ and k not in ("url", "client_secret")}
    cfg = Settings(url, secret, **fields)
    if not 1 <= cfg.batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
    return cfg


@dataclass
class Delivery:
    events: list[dict[str, Any]]
    attempt: int = 0


@dataclass
class Webhooks:
    """The outbox reader and the sender thread of one simulator."""

    sim: Sim
    settings: Settings | None = None
    stats: Counter[str] = field(default_factory=Counter)
    outbox: FaultyOutbox = field(init=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.outbox = FaultyOutbox(self.stats)

    # ------------------------------------------------------------ configuration (event-loop thread)
    def configure(self, body: dict[str, Any]) -> None:
        cfg = _settings(body)
        self.outbox.reset()
        self.outbox.configure(cfg.drop, cfg.duplicate, cfg.reorder, body.get("seed"))
        for stmt in OUTBOX:
            self.sim.store.db.execute(stmt)
        self.settings = cfg
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crm-webhooks", daemon=True)
            self._thread.start()

    def disable(self) -> None:
        self.settings = None
        self.outbox.reset()
        self.stats.clear()
        for stmt in DROP:
            self.sim.store.db.execute(stmt)

    # ------------------------------------------------------------ outbox → events (event-loop thread)
    def drain(self) -> int:
        """Turn committed outbox rows into queued deliveries; returns the number of events."""
        cfg, db = self.settings, self.sim.store.db
        if cfg is None or db.in_transaction:
            return 0
        rows = db.execute("SELECT seq, kind, object_id, type, other_id, old_props, new_props, at_ms "
                          "FROM webhook_outbox ORDER BY seq").fetchall()
        if not rows:
            return 0
        db.execute("DELETE FROM webhook_outbox WHERE seq <= ?", (rows[-1][0],))
        events = [e for row in rows for e in self._events(cfg, row)]
        for start in range(0, len(events), cfg.batch_size):
            self.outbox.put(Delivery(events[start:start + cfg.batch_size]), lambda d: Delivery(list(d.events)))
        self.stats["events"] += len(events)
        return len(events)

    def _events(self, cfg: Settings, row: tuple[Any, ...]) -> list[dict[str, Any]]:
        _, kind, object_id, code, other_id, old_blob, new_blob, at_ms = row
        t = BY_CODE.get(int(code))
        base = {"portalId": cfg.portal_id, "appId": cfg.app_id, "occurredAt": int(at_ms), "attemptNumber": 0,
                "changeSource": "CRM", "subscriptionId": 1, "objectTypeId": t.type_id if t else f"0-{code}"}
        if kind in ("associationChange", "associationRemoved"):
            other = self.sim.store.db.execute("SELECT type FROM objects WHERE id = ?", (other_id,)).fetchone()
            return [{**base, "eventId": next(self._ids), "subscriptionType": "object.associationChange",
                     "fromObjectId": object_id, "toObjectId": other_id, "fromObjectTypeId": base["objectTypeId"],
                     "toObjectTypeId": f"0-{other[0]}" if other else None,
                     "associationRemoved": kind == "associationRemoved"}]
        base["objectId"] = object_id
        if kind != "propertyChange":
            return [{**base, "eventId": next(self._ids), "subscriptionType": f"object.{kind}"}]
        old, new = orjson.loads(old_blob), orjson.loads(new_blob)
        changed = sorted(k for k in new if new.get(k) != old.get(k))
        out = [{**base, "eventId": next(self._ids), "subscriptionType": "object.propertyChange", "propertyName": k,
                "propertyValue": "" if new[k] is None else str(new[k])} for k in changed]
        if "hs_merged_object_ids" in changed:
            out.append({**base, "eventId": next(self._ids), "subscriptionType": "object.merge",
                        "primaryObjectId": object_id,
                        "mergedObjectIds": [int(x) for x in str(new["hs_merged_object_ids"]).split(";") if x]})
        return out

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.outbox.wait_idle(timeout)

    # ------------------------------------------------------------ sending (worker thread)
    def _post(self, cfg: Settings, delivery: Delivery) -> int:
        events = [{**e, "attemptNumber": delivery.attempt} for e in delivery.events]
        body = json.dumps(events, separators=(",", ":")).encode()
        stamp = str(int(time.time() * 1000))
        headers = {"content-type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                   "X-HubSpot-Signature-v3": signature_v3(cfg.client_secret, "POST", cfg.url, body, stamp)}
        req = urllib.request.Request(cfg.url, data=body, method="POST", headers=headers)  # ruff: ignore[suspicious-url-open-usage] - loopback only, checked
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # ruff: ignore[suspicious-url-open-usage]
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _run(self) -> None:
        while True:
            delivery = self.outbox.queue.get()
            try:
                if delivery is None:
                    return
                self._send(delivery)
            finally:
                self.outbox.queue.task_done()

    def _send(self, delivery: Delivery) -> None:
        while True:
            cfg = self.settings
            if cfg is None:
                self.stats["discarded"] += 1
                return
            if cfg.delay_ms:
                time.sleep(cfg.delay_ms / 1000.0)
            status = self._post(cfg, delivery)
            self.stats[f"status_{status}"] += 1
            if 200 <= status < 300:
                self.stats["delivered"] += 1
                return
            retryable = status == 0 or status == 429 or status >= 500
            delivery.attempt += 1
            if not retryable or delivery.attempt >= cfg.max_attempts:
                self.stats["failed"] += 1
                return
            self.stats["retried"] += 1
            time.sleep(cfg.backoff_ms / 1000.0 * 2 ** (delivery.attempt - 1))


def router(hooks: Webhooks) -> APIRouter:
    r = APIRouter(prefix="/_sim/webhooks")

    @r.get("")
    async def show() -> Response:
        cfg = hooks.settings
        view = None if cfg is None else {**cfg.__dict__, "client_secret": "***"}
        return json_response({"settings": view, "stats": dict(hooks.stats)})

    @r.post("")
    async def configure(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            hooks.configure(body)
        except (ValueError, TypeError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return json_response({"ok": True})

    @r.delete("")
    async def disable() -> Response:
        hooks.disable()
        return json_response({"ok": True})

    @r.post("/flush")
    async def flush() -> Response:
        hooks.drain()
        idle = await run_in_threadpool(hooks.wait_idle, 10.0)
        return json_response({"idle": idle, **dict(hooks.stats)})

    return r


class DrainAfter:
    """Pure ASGI (no cost while webhooks are off): drains the outbox once a request has been answered."""

    def __init__(self, app: ASGIApp, hooks: Webhooks) -> None:
        self.app = app
        self.hooks = hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and self.hooks.settings is not None:
            self.hooks.drain()


def install(app: FastAPI, sim: Sim) -> Webhooks:
    """Admin routes, and the drain after every request (each write's transaction has ended by then)."""
    hooks = Webhooks(sim)
    app.state.webhooks = hooks
    app.include_router(router(hooks))

    app.add_middleware(DrainAfter, hooks=hooks)
    return hooks
