"""Approval instance status-change events (Feishu ``approval_instance``).

The tenant app's event request URL is registered through the admin API
(``POST /_sim/callback``), with Feishu's ``url_verification`` challenge;
events go out for the approval codes subscribed with the vendor's
``approvals/{approval_code}/subscribe`` (or all codes when the admin
registration says so). Delivery runs on a background thread with a few
retries, so a slow receiver never slows the API; only loopback URLs are
accepted (the simulator talks to nothing else).

Delivery modes (``POST /_sim/callback`` body ``delivery: {...}``, see
:meth:`EventDispatcher.configure`): plain v1 ``event_callback`` (default) or v2
``schema: "2.0"`` envelopes; with an ``encrypt_key`` the body is Feishu's
``{"encrypt": base64(iv + AES-256-CBC(SHA-256(key), PKCS7(json)))}`` signed
with ``X-Lark-Signature`` (SHA-256 over timestamp + nonce + key + body).
Faults on demand: ``drop`` (probability), ``duplicate`` (copies of each
delivery), ``delay_ms``, ``reorder`` (deliveries held in groups of this size
and sent shuffled).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sandbox.common.delivery import FaultyOutbox
from sandbox.oa.longconn import LongConnHub

log = logging.getLogger("sandbox.oa.events")

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class CallbackError(ValueError):
    """The callback URL was refused (not loopback, or the challenge failed)."""


def check_loopback(url: str) -> None:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or (host not in LOOPBACK_HOSTS and not host.startswith("127.")):
        raise CallbackError(f"callback URL must be http(s) on a loopback address, not {url!r}")


DELIVERY_KEYS = {"encrypt_key", "schema", "drop", "duplicate", "delay_ms", "reorder", "seed"}


def seal(encrypt_key: str, doc: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Feishu's encrypted and signed form of an envelope: the body and its X-Lark-* headers."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(json.dumps(doc, ensure_ascii=False).encode()) + padder.finalize()
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(hashlib.sha256(encrypt_key.encode()).digest()), modes.CBC(iv)).encryptor()
    body = json.dumps({"encrypt": base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()}).encode()
    stamp, nonce = str(int(time.time())), uuidlib.uuid4().hex
    sign = hashlib.sha256((stamp + nonce + encrypt_key).encode() + body).hexdigest()
    return body, {"X-Lark-Request-Timestamp": stamp, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": sign}


def _post(url: str, body: dict[str, Any], timeout: float, encrypt_key: str | None = None) -> tuple[int, bytes]:
    headers = {"content-type": "application/json; charset=utf-8"}
    if encrypt_key:
        raw, signed = seal(encrypt_key, body)
        headers.update(signed)
    else:
        raw = json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=raw, method="POST",  # ruff: ignore[suspicious-url-open-usage] - loopback only, checked
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # ruff: ignore[suspicious-url-open-usage]
        return resp.status, resp.read()


class EventDispatcher:
    """Queue + worker thread posting events to the registered URL."""

    def __init__(self, app_id: str, verification_token: str, retries: int = 3, backoff_s: float = 0.5,
                 timeout_s: float = 5.0) -> None:
        self.app_id = app_id
        self.verification_token = verification_token
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.url: str | None = None
        self.all_codes = False
        self.stats: Counter[str] = Counter()
        self.delivery: dict[str, Any] = {"encrypt_key": None, "schema": "1", "delay_ms": 0}
        self.outbox = FaultyOutbox(self.stats)
        self.mode = "webhook"  # or "long_connection": events go to one connected WebSocket client (longconn.py)
        self.longconn = LongConnHub(self.stats)
        self._queue = self.outbox.queue
        self._thread = threading.Thread(target=self._run, name="oa-events", daemon=True)
        self._thread.start()

    def configure(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Delivery mode and faults (unknown keys refused); returns the mode now in force."""
        options = dict(options or {})
        unknown = set(options) - DELIVERY_KEYS
        if unknown:
            raise CallbackError(f"unknown delivery option(s) {sorted(unknown)}; known: {sorted(DELIVERY_KEYS)}")
        if "schema" in options and str(options["schema"]) not in ("1", "2"):
            raise CallbackError("delivery schema must be 1 (event_callback) or 2 (schema 2.0)")
        try:
            self.outbox.configure(*(options.pop(k, None) for k in ("drop", "duplicate", "reorder", "seed")))
        except ValueError as exc:
            raise CallbackError(str(exc)) from exc
        for key, value in options.items():
            self.delivery[key] = str(value) if key == "schema" else value
        return dict(self.delivery, encrypt_key="***" if self.delivery["encrypt_key"] else None)

    def register(self, url: str, all_codes: bool = True, verify: bool = True) -> None:
        check_loopback(url)
        if verify:
            challenge = uuidlib.uuid4().hex
            try:
                status, raw = _post(url, {"challenge": challenge, "token": self.verification_token,
                                          "type": "url_verification"}, self.timeout_s, self.delivery["encrypt_key"])
                answer = json.loads(raw or b"{}")
            except (OSError, ValueError, urllib.error.URLError) as exc:
                raise CallbackError(f"url_verification failed: {exc.__class__.__name__}: {exc}") from exc
            if status != 200 or not isinstance(answer, dict) or answer.get("challenge") != challenge:
                raise CallbackError("url_verification failed: the receiver must answer {\"challenge\": <challenge>}")
        self.url = url
        self.all_codes = all_codes
        self.mode = "webhook"

    def use_long_connection(self, all_codes: bool = True) -> None:
        """Feishu's console saves the long-connection mode only while a client is connected; so does this."""
        if not self.longconn.clients:
            raise CallbackError("no long-connection client is connected: start it first (as Feishu's console asks)")
        self.url, self.all_codes, self.mode = None, all_codes, "long_connection"

    def unregister(self) -> None:
        self.url = None
        self.all_codes = False
        self.mode = "webhook"
        self.longconn.reset()
        self.delivery.update(encrypt_key=None, schema="1", delay_ms=0)
        self.outbox.reset()

    def emit(self, approval_code: str, instance_code: str, status: str, operate_ms: int, instance_uuid: str | None,
             subscribed: set[str]) -> bool:
        """Queue the event if a URL is registered and the approval code is subscribed."""
        if not (self.url or self.mode == "long_connection") or not (self.all_codes or approval_code in subscribed):
            return False
        event = {
            "app_id": self.app_id, "tenant_key": "sandbox-tenant", "type": "approval_instance",
            "approval_code": approval_code, "instance_code": instance_code, "status": status,
            # Feishu sends operate_time as an int64 for REVERTED and as a string otherwise (NOTES.md)
            "operate_time": operate_ms if status == "REVERTED" else str(operate_ms),
            "instance_operate_time": str(operate_ms),
            "uuid": instance_uuid or "",
        }
        body: dict[str, Any]
        if self.delivery["schema"] == "2":
            header = {"event_id": uuidlib.uuid4().hex, "token": self.verification_token,
                      "create_time": str(int(time.time() * 1000)), "event_type": "approval_instance",
                      "tenant_key": event.pop("tenant_key"), "app_id": event.pop("app_id")}
            body = {"schema": "2.0", "header": header, "event": event}
        else:
            body = {"ts": f"{time.time():.7f}", "uuid": uuidlib.uuid4().hex, "token": self.verification_token,
                    "type": "event_callback", "event": event}
        self.stats["queued"] += 1
        # a long connection carries the plain event JSON: no Encrypt Key, no signature (lark_oapi/ws/client.py)
        self.outbox.put({"url": self.url, "body": body, "encrypt_key": self.delivery["encrypt_key"], "mode": self.mode})
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.outbox.wait_idle(timeout)

    def close(self) -> None:
        self._queue.put(None)

    def _send(self, item: Mapping[str, Any]) -> int:
        if item.get("mode") == "long_connection":
            code = self.longconn.push(json.dumps(item["body"], ensure_ascii=False).encode())
            self.stats["longconn_no_client" if code is None else f"longconn_answer_{code}"] += 1
            return code or 0
        status, _ = _post(item["url"], item["body"], self.timeout_s, item.get("encrypt_key"))
        return status

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.delivery["delay_ms"]:
                    time.sleep(float(self.delivery["delay_ms"]) / 1000.0)
                for attempt in range(self.retries + 1):
                    try:
                        status = self._send(item)
                        if 200 <= status < 300:
                            self.stats["delivered"] += 1
                            break
                    except (OSError, urllib.error.URLError) as exc:
                        log.info("event delivery attempt %d failed: %s", attempt + 1, exc.__class__.__name__)
                    if attempt < self.retries:
                        self.stats["retried"] += 1
                        time.sleep(self.backoff_s * (2**attempt))
                else:
                    self.stats["failed"] += 1
            finally:
                self._queue.task_done()
