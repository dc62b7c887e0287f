"""Who is looking at the bridge pages, whether they may release quarantine, and CSRF protection.

The pages sit behind Airflow's own login: the API server's auth manager
issues a JWT that the UI keeps in the ``_token`` cookie (or a client sends
as ``Authorization: Bearer``). :class:`AirflowAuthenticator` asks Airflow's
``get_user`` for the user behind it, exactly as Airflow's own API routes do,
so whatever auth manager is configured (simple, FAB, Keycloak, …) decides.

Releasing a quarantined record is a decision with consequences (the record is
sent again), so it needs more than a login: the user must be allowed to edit
Airflow Variables (Airflow's Op and Admin roles in the simple and FAB auth
managers) or be listed in settings ``ui.quarantine_releasers``.

Because the cookie authenticates a browser automatically, every POST also
needs a CSRF token bound to the user (HMAC of the user name and a time window
with a server secret) and must not come from another site (``Origin`` /
``Sec-Fetch-Site``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from starlette.requests import Request


@dataclass(frozen=True)
class Viewer:
    """The logged-in Airflow user looking at a page, and the permission-policy role they see it with.

    The authenticator fills ``name`` and ``may_release``; the app sets ``role``
    and ``role_label`` from settings ``ui.user_roles`` (a user not listed gets
    ``ui.default_role``, the narrowest role: fail closed).
    """

    name: str
    may_release: bool
    role: str = "employee"
    role_label: str = "普通员工"


class NotAuthenticated(Exception):
    """No valid Airflow login on the request."""

    def __init__(self, reason: str, login_url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.login_url = login_url


class Forbidden(Exception):
    """Logged in, but not allowed to do this; the message is for the user (Chinese)."""


class Authenticator(Protocol):
    async def __call__(self, request: Request) -> Viewer: ...


class AirflowAuthenticator:
    """The Airflow user behind the request, from the API server's auth manager.

    Only usable inside Airflow's API server (the auth manager is initialised
    there); Airflow modules are imported on the first request, not at plugin
    load.
    """

    def __init__(self, releasers: Collection[str] = (), release_by_airflow_role: bool = True) -> None:
        self.releasers = frozenset(releasers)
        self.release_by_airflow_role = release_by_airflow_role

    @staticmethod
    def login_url(request: Request) -> str | None:
        from airflow.api_fastapi.app import get_auth_manager

        try:
            return str(get_auth_manager().get_url_login(next_url=str(request.url)))
        except Exception:  # an auth manager without a login page: answer 401 only
            return None

    async def __call__(self, request: Request) -> Viewer:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.core_api.security import get_user
        from fastapi import HTTPException
        from fastapi.security import HTTPBearer

        credentials = await HTTPBearer(auto_error=False)(request)
        try:
            user = await get_user(request, None, credentials)
        except HTTPException as exc:
            raise NotAuthenticated(str(exc.detail), self.login_url(request)) from exc
        name = str(user.get_name())
        may_release = name in self.releasers
        if not may_release and self.release_by_airflow_role:
            may_release = bool(get_auth_manager().is_authorized_variable(method="PUT", user=user))
        return Viewer(name=name, may_release=may_release)


def airflow_secret() -> bytes:
    """Key material for CSRF tokens: Airflow's ``[api] secret_key`` (shared by all API server workers)."""
    try:
        from airflow.configuration import conf

        secret = str(conf.get("api", "secret_key", fallback="") or "")
    except Exception:  # not inside Airflow (tools, tests)
        secret = ""
    return secret.encode() if secret else os.urandom(32)


class CsrfGuard:
    """Tokens bound to a user name and a 12-hour window; the current and the previous window are valid."""

    def __init__(self, secret: bytes, window_seconds: int = 12 * 3600) -> None:
        self._key = hashlib.sha256(b"bridge-ui-csrf\x00" + secret).digest()
        self.window = window_seconds

    def _token(self, subject: str, window: int) -> str:
        message = f"{subject}\x00{window}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:40]

    def token(self, subject: str, now: float | None = None) -> str:
        return self._token(subject, int((now if now is not None else time.time()) // self.window))

    def valid(self, subject: str, token: str | None, now: float | None = None) -> bool:
        if not token:
            return False
        current = int((now if now is not None else time.time()) // self.window)
        return any(hmac.compare_digest(self._token(subject, w), token) for w in (current, current - 1))


def same_site_request(request: Request, allowed_origins: Collection[str] = ()) -> bool:
    """False when the browser says the request comes from another site (a cross-site form post).

    Non-browser clients send neither header: they still need the CSRF token.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    netloc = urlsplit(origin).netloc.lower()
    own = {request.headers.get("host", "").lower()}
    own.update(urlsplit(o).netloc.lower() for o in allowed_origins)
    return netloc in own
