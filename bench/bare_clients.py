"""The bare HTTP clients the floors are measured with: no hooks, no hub, no retries.

``CrmFloorClient`` / ``OaFloorClient`` keep one HTTP/1.1 connection alive and
count their requests (the floors report requests per record);
``crm_session`` / ``oa_session`` are token-bearing ``requests`` sessions.
"""

from __future__ import annotations

import http.client
import urllib.parse
from typing import TYPE_CHECKING, Any

import orjson

from sandbox import launcher

if TYPE_CHECKING:
    import requests


class KeepAliveClient:
    """Keep-alive HTTP/1.1 to a simulator, with a bearer token once ``auth`` is set; counts requests."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)
        self.requests = 0
        self.auth: str | None = None

    def call(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> dict[str, Any]:
        headers = {"content-type": ctype}
        if self.auth is not None:
            headers["authorization"] = self.auth
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        self.requests += 1
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {raw[:300]!r}")
        out: dict[str, Any] = orjson.loads(raw)
        return out


class CrmFloorClient(KeepAliveClient):
    """The CRM simulator with an OAuth access token (the token request is counted)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        form = urllib.parse.urlencode(
            {
                "grant_type": "refresh_token",
                "client_id": launcher.CRM_CLIENT_ID,
                "client_secret": launcher.CRM_CLIENT_SECRET,
                "refresh_token": launcher.CRM_REFRESH_TOKEN,
            }
        )
        token = self.call("POST", "/oauth/v1/token", form.encode(), "application/x-www-form-urlencoded")
        self.auth = "Bearer " + token["access_token"]


class OaFloorClient(KeepAliveClient):
    """The OA simulator with a tenant token (the token request is counted); bodies are sent as JSON."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        token = self.call(
            "POST",
            "/open-apis/auth/v3/tenant_access_token/internal",
            {"app_id": launcher.OA_APP_ID, "app_secret": launcher.OA_APP_SECRET},
        )
        self.auth = "Bearer " + token["tenant_access_token"]

    def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> dict[str, Any]:
        return super().call(method, path, orjson.dumps(body) if body is not None else None, ctype)


def crm_session(url: str) -> requests.Session:
    """A ``requests`` session to the CRM simulator bearing an OAuth access token."""
    import requests

    s = requests.Session()
    r = s.post(
        url + "/oauth/v3/token",
        data={
            "grant_type": "refresh_token",
            "client_id": launcher.CRM_CLIENT_ID,
            "client_secret": launcher.CRM_CLIENT_SECRET,
            "refresh_token": launcher.CRM_REFRESH_TOKEN,
        },
        timeout=30,
    )
    r.raise_for_status()
    s.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    return s


def oa_session(url: str) -> requests.Session:
    """A ``requests`` session to the OA simulator bearing a tenant token."""
    import requests

    s = requests.Session()
    r = s.post(
        url + "/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": launcher.OA_APP_ID, "app_secret": launcher.OA_APP_SECRET},
        timeout=30,
    )
    r.raise_for_status()
    s.headers["Authorization"] = "Bearer " + r.json()["tenant_access_token"]
    return s
