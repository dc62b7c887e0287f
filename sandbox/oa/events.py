"""Approval instance status-change events (Feishu ``approval_instance``).

The tenant app's event request URL is registered through the admin API
(``POST /_sim/callback``), with Feishu's ``url_verification`` challenge;
events go out for the approval codes subscribed with the vendor's
``approvals/{approval_code}/subscribe`` (or all codes when the admin
registration says so). Delivery runs on a background thread with a few
retries, so a slow receiver never slows the API; only loopback URLs are
accepted (the simulator talks to nothing else).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from collections import Counter
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("sandbox.oa.events")

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class CallbackError(ValueError):
    """The callback URL was refused (not loopback, or the challenge failed)."""


def check_loopback(url: str) -> None:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or (host not in LOOPBACK_HOSTS and not host.startswith("127.")):
        raise CallbackError(f"callback URL must be http(s) on a loopback address, not {url!r}")


def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode(), method="POST",  # ruff: ignore[suspicious-url-open-usage] - loopback only, checked
                                 headers={"content-type": "application/json; charset=utf-8"})
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
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="oa-events", daemon=True)
        self._thread.start()

    def register(self, url: str, all_codes: bool = True, verify: bool = True) -> None:
        check_loopback(url)
        if verify:
            challenge = uuidlib.uuid4().hex
            try:
                status, raw = _post(url, {"challenge": challenge, "token": self.verification_token,
                                          "type": "url_verification"}, self.timeout_s)
                answer = json.loads(raw or b"{}")
            except (OSError, ValueError, urllib.error.URLError) as exc:
                raise CallbackError(f"url_verification failed: {exc.__class__.__name__}: {exc}") from exc
            if status != 200 or not isinstance(answer, dict) or answer.get("challenge") != challenge:
                raise CallbackError("url_verification failed: the receiver must answer {\"challenge\": <challenge>}")
        self.url = url
        self.all_codes = all_codes

    def unregister(self) -> None:
        self.url = None
        self.all_codes = False

    def emit(self, approval_code: str, instance_code: str, status: str, operate_ms: int, instance_uuid: str | None,
             subscribed: set[str]) -> bool:
        """Queue the event if a URL is registered and the approval code is subscribed."""
        if not self.url or not (self.all_codes or approval_code in subscribed):
            return False
        body = {
            "ts": f"{time.time():.7f}",
            "uuid": uuidlib.uuid4().hex,
            "token": self.verification_token,
            "type": "event_callback",
            "event": {
                "app_id": self.app_id, "tenant_key": "sandbox-tenant", "type": "approval_instance",
                "approval_code": approval_code, "instance_code": instance_code, "status": status,
                # Feishu sends operate_time as an int64 for REVERTED and as a string otherwise (NOTES.md)
                "operate_time": operate_ms if status == "REVERTED" else str(operate_ms),
                "instance_operate_time": str(operate_ms),
                "uuid": instance_uuid or "",
            },
        }
        self.stats["queued"] += 1
        self._queue.put({"url": self.url, "body": body})
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                for attempt in range(self.retries + 1):
                    try:
                        status, _ = _post(item["url"], item["body"], self.timeout_s)
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
