"""Access tokens: fetched once, cached per process, refreshed before they expire.

A :class:`TokenCache` exists once per process for each set of credentials
(keyed by a digest of the Connection's host, login and secrets, never the
secrets themselves), so every hook and thread of a worker shares one token,
and concurrent threads that find it missing or expiring refresh it once: the
first takes the lock and fetches, the others wait and reuse its result.

A refused credential (revoked secret or refresh token) is remembered for a
short time: the next callers fail at once with the same :class:`AuthError`
instead of asking the token endpoint again (no retry storm).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from requests import PreparedRequest
from requests.auth import AuthBase

from bridge.hooks.errors import AuthError

REFRESH_MARGIN_MAX = 300.0  # refresh at most 5 minutes before expiry ...
REFRESH_MARGIN_SHARE = 0.2  # ... or when 20 % of the lifetime is left, if that is shorter
FAILURE_MEMORY_SECONDS = 30.0


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.monotonic() deadline
    lifetime: float
    account: str | None = None  # what the token opens, when the vendor says (HubSpot: the portal id)

    def fresh(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        margin = min(REFRESH_MARGIN_MAX, self.lifetime * REFRESH_MARGIN_SHARE)
        return now < self.expires_at - margin

    @classmethod
    def expiring_in(cls, value: str, seconds: float, account: str | None = None) -> Token:
        seconds = max(0.0, float(seconds))
        return cls(value=value, expires_at=time.monotonic() + seconds, lifetime=seconds, account=account)


def credentials_key(*parts: str | None) -> str:
    """A cache key for a set of credentials that does not reveal them."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()
    return digest[:32]


class TokenCache:
    """One token for one set of credentials, shared by the whole process."""

    _registry: ClassVar[dict[str, TokenCache]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: str) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._failure: tuple[AuthError, float] | None = None
        self.fetches = 0  # tokens fetched by this process for these credentials

    @classmethod
    def for_key(cls, key: str) -> TokenCache:
        with cls._registry_lock:
            cache = cls._registry.get(key)
            if cache is None:
                cache = cls._registry[key] = cls(key)
            return cache

    @classmethod
    def clear_all(cls) -> None:
        """Forget every cached token (tests; a worker after a Connection change needs nothing: the key changes)."""
        with cls._registry_lock:
            cls._registry.clear()

    def get(self, fetch: Callable[[], Token]) -> Token:
        token = self._token
        if token is not None and token.fresh():
            return token
        with self._lock:
            token = self._token
            if token is not None and token.fresh():
                return token  # another thread refreshed it while we waited
            if self._failure is not None:
                error, until = self._failure
                if time.monotonic() < until:
                    raise AuthError(
                        error.message,
                        system=error.system,
                        status=error.status,
                        code=error.code,
                        category=error.category,
                        method=error.method,
                        path=error.path,
                    )
                self._failure = None
            try:
                token = fetch()
            except AuthError as exc:
                self._failure = (exc, time.monotonic() + FAILURE_MEMORY_SECONDS)
                self._token = None
                raise
            self.fetches += 1
            self._token = token
            return token

    def invalidate(self, value: str) -> bool:
        """Drop the token if it is still ``value`` (a 401 on it); False when another thread already did."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None
                return True
            return False


class BearerTokenAuth(AuthBase):
    """``Authorization: Bearer <token>`` from a shared :class:`TokenCache`; ``fetch`` gets a new token."""

    refreshable = True

    def __init__(self, cache: TokenCache, fetch: Callable[[], Token]) -> None:
        self.cache = cache
        self.fetch = fetch

    def token(self) -> str:
        return self.current().value

    def current(self) -> Token:
        """The valid token (fetched if needed), with what the vendor said about it."""
        return self.cache.get(self.fetch)

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["Authorization"] = "Bearer " + self.token()
        return r

    def rejected(self, used: str) -> bool:
        """The vendor refused token ``used``: drop it (unless another thread already replaced it) so the
        next request fetches a new one. True: a new attempt can carry a different token."""
        self.cache.invalidate(used)
        return True


class StaticTokenAuth(AuthBase):
    """A token that cannot be refreshed (HubSpot private-app token): a 401 on it is final."""

    refreshable = False

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["Authorization"] = "Bearer " + self._token
        return r

    def rejected(self, used: str) -> bool:
        return False


class NoAuth(AuthBase):
    """For the token endpoint itself (keeps the session's auth and ``.netrc`` out)."""

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        return r
