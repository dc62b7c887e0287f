"""OAuth tokens and rate limits of the simulated portal.

``POST /oauth/v1/token`` and ``/oauth/v3/token`` exchange the app's refresh
token (``grant_type=refresh_token`` with ``client_id``/``client_secret``) for
a 30-minute access token; HubSpot keeps the refresh token the same, so does
the simulator. A private-app token (a static bearer) is accepted too. Token
errors carry HubSpot's bodies: ``BAD_CLIENT_ID`` / ``BAD_REFRESH_TOKEN`` on
the token endpoint (as HubSpot's clients quote them), 401 with
``INVALID_AUTHENTICATION`` or ``EXPIRED_AUTHENTICATION`` on the API.

Rate limits are counted per app (all access tokens of an OAuth app share the
portal's budget, as on HubSpot) or per private-app token: a rolling 10-second
window for every API call and a separate per-second limit for the search
endpoints. Answers carry ``X-HubSpot-RateLimit-*`` headers.
"""

from __future__ import annotations

import secrets
from collections import Counter, deque
from dataclasses import dataclass, field

from sandbox.crm.errors import AUTH_NOT_FOUND, HubSpotError, rate_limit_error
from sandbox.crm.model import iso_ms
from sandbox.crm.store import PORTAL_ID, Clock

SCOPES = ["oauth", "crm.objects.companies.read", "crm.objects.companies.write", "crm.objects.contacts.read",
          "crm.objects.contacts.write", "crm.objects.deals.read", "crm.objects.deals.write",
          "crm.objects.owners.read", "crm.schemas.deals.read", "files"]


@dataclass
class AccessToken:
    token: str
    key: str  # rate-limit key: "app:<client id>" or "pat"
    refresh_token: str | None
    expires_ms: int | None  # None: never (private app)
    revoked: bool = False


@dataclass
class AuthConfig:
    client_id: str
    client_secret: str
    refresh_token: str
    private_app_token: str | None
    token_ttl_s: int = 1800


@dataclass
class Auth:
    config: AuthConfig
    clock: Clock
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    revoked_refresh: set[str] = field(default_factory=set)
    revoked_clients: set[str] = field(default_factory=set)
    issued: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.config.private_app_token:
            tok = self.config.private_app_token
            self.tokens[tok] = AccessToken(tok, "pat", None, None)

    # ------------------------------------------------------------ token endpoint
    def exchange(self, form: dict[str, str]) -> dict[str, object]:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if grant != "refresh_token":
            if grant == "authorization_code":
                raise _oauth(400, "BAD_AUTH_CODE", "missing or invalid auth code")
            raise _oauth(400, "BAD_GRANT_TYPE", "missing or unknown grant type")
        if client_id != self.config.client_id or client_id in self.revoked_clients:
            raise _oauth(400, "BAD_CLIENT_ID", "missing or invalid client id")
        if form.get("client_secret", "") != self.config.client_secret:
            # Modelled on the two codes above; HubSpot's exact code for a wrong secret is not public.
            raise _oauth(400, "BAD_CLIENT_SECRET", "missing or invalid client secret")
        refresh = form.get("refresh_token", "")
        if refresh != self.config.refresh_token or refresh in self.revoked_refresh:
            raise _oauth(400, "BAD_REFRESH_TOKEN", "missing or invalid refresh token")
        token = "sim-" + secrets.token_urlsafe(32)
        ttl = self.config.token_ttl_s
        self.tokens[token] = AccessToken(token, "app:" + client_id, refresh, self.clock.now_ms() + ttl * 1000)
        self.issued["access_token"] += 1
        # v1 answers {token_type, refresh_token, access_token, expires_in}; the v3 spec adds token_use & co.
        return {"token_type": "bearer", "refresh_token": refresh, "access_token": token, "expires_in": ttl,
                "token_use": "access_token", "hub_id": PORTAL_ID, "scopes": SCOPES}

    def token_info(self, token: str) -> dict[str, object]:
        info = self.tokens.get(token)
        now = self.clock.now_ms()
        if info is None or info.revoked or info.expires_ms is None or info.expires_ms <= now:
            raise HubSpotError(404, "Token not found or expired", "OBJECT_NOT_FOUND")
        return {"token": token, "user": "former.sales@example.com", "hub_domain": "bridge-sim.hubspot.com",
                "scopes": SCOPES, "hub_id": PORTAL_ID, "app_id": 4242, "expires_in": (info.expires_ms - now) // 1000,
                "user_id": 4242, "token_type": "access", "token_use": "access_token", "client_id": self.config.client_id}

    # ------------------------------------------------------------ API calls
    def authenticate(self, header: str | None) -> AccessToken:
        if not header or not header[:7].lower() == "bearer ":
            raise HubSpotError(401, AUTH_NOT_FOUND, "INVALID_AUTHENTICATION")
        info = self.tokens.get(header[7:].strip())
        if info is None or info.revoked:
            raise HubSpotError(401, AUTH_NOT_FOUND, "INVALID_AUTHENTICATION")
        if info.expires_ms is not None:
            now = self.clock.now_ms()
            if now >= info.expires_ms:
                ago = (now - info.expires_ms) // 1000
                raise HubSpotError(401, f"The OAuth token used to make this call expired {_ago(ago)} ago.",
                                   "EXPIRED_AUTHENTICATION", context={"expire time": [iso_ms(info.expires_ms)]})
        return info

    # ------------------------------------------------------------ admin
    def expire_all(self) -> int:
        now = self.clock.now_ms()
        n = 0
        for info in self.tokens.values():
            if info.expires_ms is not None and info.expires_ms > now:
                info.expires_ms = now
                n += 1
        return n

    def revoke(self, refresh_token: str | None = None, client_id: str | None = None,
               private_app: bool = False) -> dict[str, int]:
        """Revoke a refresh token (default: the configured one), a whole client, or the private-app token.
        Access tokens issued from what is revoked stop working at once."""
        if client_id:
            self.revoked_clients.add(client_id)
        if private_app and self.config.private_app_token:
            self.tokens[self.config.private_app_token].revoked = True
        if refresh_token or not (client_id or private_app):
            self.revoked_refresh.add(refresh_token or self.config.refresh_token)
        n = 0
        for info in self.tokens.values():
            if info.revoked:
                continue
            if info.refresh_token in self.revoked_refresh or info.key.removeprefix("app:") in self.revoked_clients:
                info.revoked = True
                n += 1
        return {"access_tokens_revoked": n}

    def restore(self) -> None:
        """Undo revocations (admin reset)."""
        self.revoked_refresh.clear()
        self.revoked_clients.clear()
        for info in self.tokens.values():
            info.revoked = False


def _ago(seconds: int) -> str:
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}(s)"
    return f"{seconds} second(s)"


def _oauth(status: int, code: str, message: str) -> HubSpotError:
    """The token endpoint's error body: HubSpot puts the code in ``status``. ``category`` repeats it so
    the body also satisfies the spec's Error schema (which requires one)."""
    return HubSpotError(status, message, code, body={"status": code, "message": message, "category": code})


# ------------------------------------------------------------------ rate limits


@dataclass
class RateLimits:
    """Per-key sliding windows. ``burst`` calls per ``window_ms``; ``search_per_s`` search calls per second."""

    clock: Clock
    enabled: bool = True
    burst: int = 110  # HubSpot: OAuth apps 110 per 10 s per portal
    window_ms: int = 10_000
    search_per_s: int = 5  # HubSpot: 5 search requests per second per token
    daily: int = 500_000  # private apps only (HubSpot sends the daily headers for private apps)
    calls: dict[str, deque[int]] = field(default_factory=dict)
    searches: dict[str, deque[int]] = field(default_factory=dict)
    day_count: Counter[str] = field(default_factory=Counter)
    limited: Counter[str] = field(default_factory=Counter)

    def check(self, key: str, search: bool) -> dict[str, str]:
        """Count one call; return the headers for the answer, or raise the 429."""
        now = self.clock.now_ms()
        window = self.calls.setdefault(key, deque())
        while window and window[0] <= now - self.window_ms:
            window.popleft()
        recent = 0
        for ts in reversed(window):
            if ts <= now - 1000:
                break
            recent += 1
        secondly = max(1, self.burst // 10)
        if not self.enabled:
            window.append(now)
            return self._headers(key, len(window), recent + 1, secondly)
        if len(window) >= self.burst:
            self.limited["TEN_SECONDLY_ROLLING"] += 1
            raise rate_limit_error("TEN_SECONDLY_ROLLING", "publicapi:" + key, limit=self.burst, remaining=0,
                                   headers=self._headers(key, len(window), recent, secondly))
        if search:
            sw = self.searches.setdefault(key, deque())
            while sw and sw[0] <= now - 1000:
                sw.popleft()
            if len(sw) >= self.search_per_s:
                self.limited["SECONDLY"] += 1
                raise rate_limit_error("SECONDLY", "publicapi:search:" + key, limit=self.search_per_s,
                                       remaining=0, headers=self._headers(key, len(window), recent, secondly))
            sw.append(now)
        window.append(now)
        self.day_count[key] += 1
        return self._headers(key, len(window), recent + 1, secondly)

    def _headers(self, key: str, used: int, used_second: int, secondly: int) -> dict[str, str]:
        h = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.window_ms),
            "X-HubSpot-RateLimit-Max": str(self.burst),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.burst - used)),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, secondly - used_second)),
        }
        if key == "pat":
            h["X-HubSpot-RateLimit-Daily"] = str(self.daily)
            h["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily - self.day_count[key]))
        return h
