"""Feishu-shaped frequency limits and the tenant access tokens.

Limits are per API and per app (Feishu: "每个 API、每个应用、每个租户"),
with the documented tiers: 100/min for writes and instance listing,
1000/min & 50/s for reads. A window opens at the first request and lasts its
period; over the limit the request gets HTTP 429, code 99991400 and the
``x-ogw-ratelimit-limit`` / ``x-ogw-ratelimit-reset`` headers (seconds until
the window reopens).

Tokens follow the documented lifetime rule: 2 h tokens; asking again while
the current token has at least a quarter of its lifetime left (30 min of
2 h) returns the same token with the remaining ``expire``; later a new one is
issued and the old one stays valid until it expires.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass

# Feishu's documented tiers: [(limit, period seconds), ...].
PER_MINUTE_100: list[tuple[int, float]] = [(100, 60)]
PER_MINUTE_1000_PER_SECOND_50: list[tuple[int, float]] = [(1000, 60), (50, 1)]

# Route keys -> their tier.
FEISHU_LIMITS: dict[str, list[tuple[int, float]]] = {
    **dict.fromkeys(
        ("approvals.get", "approvals.unsubscribe", "instances.create", "instances.list", "instances.cancel",
         "tasks.approve", "tasks.reject", "tasks.resubmit"),
        PER_MINUTE_100,
    ),
    **dict.fromkeys(
        ("instances.get", "instances.query", "users.batch_get_id", "users.batch", "comments.create",
         "comments.list"),
        PER_MINUTE_1000_PER_SECOND_50,  # comments: x-lark-rate-limit tier 4, the instance read's tier
    ),
    "approvals.subscribe": [(20, 1)],
}


class RateLimiter:
    """Fixed windows opened by the first request; thread-safe."""

    def __init__(self, profile: str = "feishu", overrides: dict[str, list[tuple[int, float]]] | None = None) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, float], tuple[float, int]] = {}
        self.configure(profile, overrides)

    def configure(self, profile: str, overrides: dict[str, list[tuple[int, float]]] | None = None) -> None:
        if profile not in ("feishu", "off"):
            raise ValueError(f"rate limit profile must be feishu or off, not {profile!r}")
        limits = dict(FEISHU_LIMITS) if profile == "feishu" else {}
        for key, rules in (overrides or {}).items():
            limits[key] = [(int(n), float(p)) for n, p in rules]
        with self._lock:
            self.profile = profile
            self.limits = limits
            self._windows.clear()

    def check(self, route: str, app_id: str, now: float | None = None) -> tuple[int, int] | None:
        """None if allowed (and counted), else (limit, reset seconds) of the window that is full."""
        rules = self.limits.get(route)
        if not rules:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            for limit, period in rules:
                start, used = self._window((route, app_id, period), now)
                if used >= limit:
                    return limit, max(1, math.ceil(start + period - now))
            for _limit, period in rules:
                start, used = self._window((route, app_id, period), now)
                self._windows[(route, app_id, period)] = (start, used + 1)
        return None

    def _window(self, key: tuple[str, str, float], now: float) -> tuple[float, int]:
        """(start, requests counted) of the window ``key`` (route, app, period) at ``now``; an expired one restarts."""
        start, used = self._windows.get(key, (now, 0))
        return (now, 0) if now - start >= key[2] else (start, used)


@dataclass
class Token:
    value: str
    app_id: str
    kind: str  # tenant | app
    expires_ms: int


class TokenBook:
    """Issued tokens of the one app the simulated tenant has."""

    def __init__(self, app_id: str, app_secret: str, ttl_s: int = 7200) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.ttl_s = ttl_s
        self.revoked = False
        self.issued = 0
        self._tokens: dict[str, Token] = {}
        self._current: dict[str, Token] = {}
        self._lock = threading.Lock()

    def check_credentials(self, app_id: object, app_secret: object) -> str | None:
        """None when the credentials are good, else the failure: 'param' or 'secret'."""
        if not isinstance(app_id, str) or not isinstance(app_secret, str) or not app_id or not app_secret:
            return "param"
        if app_id != self.app_id:
            return "param"
        if self.revoked or not secrets.compare_digest(app_secret, self.app_secret):
            return "secret"
        return None

    def issue(self, kind: str, now_ms: int) -> tuple[str, int]:
        """(token, expire seconds): the current one while >= ttl/4 remains, else a new one."""
        with self._lock:
            cur = self._current.get(kind)
            if cur is not None and cur.expires_ms - now_ms >= self.ttl_s * 1000 // 4:
                return cur.value, (cur.expires_ms - now_ms) // 1000
            prefix = "t-" if kind == "tenant" else "a-"
            tok = Token(prefix + secrets.token_hex(20), self.app_id, kind, now_ms + self.ttl_s * 1000)
            self._tokens[tok.value] = tok
            self._current[kind] = tok
            self.issued += 1
            # Forget tokens that expired a day ago.
            for value in [v for v, t in self._tokens.items() if t.expires_ms < now_ms - 86_400_000]:
                del self._tokens[value]
            return tok.value, self.ttl_s

    def lookup(self, value: str) -> Token | None:
        with self._lock:
            return self._tokens.get(value)

    def expire_all(self, now_ms: int) -> int:
        with self._lock:
            for tok in self._tokens.values():
                tok.expires_ms = min(tok.expires_ms, now_ms - 1)
            self._current.clear()
            return len(self._tokens)

    def revoke(self) -> None:
        """The secret stops working and every token becomes invalid."""
        with self._lock:
            self.revoked = True
            self._tokens.clear()
            self._current.clear()

    def restore(self) -> None:
        with self._lock:
            self.revoked = False

    def reset(self) -> None:
        with self._lock:
            self.revoked = False
            self._tokens.clear()
            self._current.clear()
            self.issued = 0
