"""What the bridge pages need from their surroundings: the login, the CSRF secret, the hub, the policy, the roles.

Tests build a :class:`UiConfig` of their own; inside Airflow's API server
:func:`default_config` reads Airflow's login and the settings ``ui`` section.
The hub URL and the permission policy are looked up at most once a minute,
so an edit of the Connection or of ``include/permissions.yaml`` needs no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from bridge import settings
from bridge.hub import engine as hub_engine
from bridge.ui import queries
from bridge.ui.auth import AirflowAuthenticator, Authenticator, airflow_secret
from bridge.ui.queries import HubUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class Refreshed(Generic[T]):
    """A value loaded again at most once per ``ttl_seconds`` (a lookup that costs a query or a file read)."""

    def __init__(self, load: Callable[[], T], ttl_seconds: float = 60) -> None:
        self.ttl = ttl_seconds
        self._load = load
        self._value: tuple[float, T] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if self._value is not None and time.monotonic() - self._value[0] < self.ttl:
                return self._value[1]
            value = self._load()
            self._value = (time.monotonic(), value)
            return value


def _load_policy() -> Any:
    from bridge import permissions

    return permissions.load()


def _policy_cache() -> Callable[[], Any]:
    return Refreshed(_load_policy)


def connection_hub_url() -> str:
    """The bridge_hub Connection's URL, its failures said as the pages say them (503, what to check)."""
    try:
        return queries.server_hub_url()
    except hub_engine.HubConfigError as exc:
        raise HubUnavailable(
            "中枢库连接配置有误，请检查 Airflow Connection bridge_hub（或环境变量 AIRFLOW_CONN_BRIDGE_HUB）。",
            str(exc),
        ) from exc
    except Exception as exc:  # the Airflow Connection lookup itself failed
        raise HubUnavailable(
            "读取 Airflow Connection bridge_hub 失败，请检查 Airflow 的连接配置与元数据库。",
            f"{type(exc).__name__}: {exc}"[:300],
        ) from exc


@dataclass
class UiConfig:
    """What the app needs from its surroundings; tests pass their own."""

    authenticator: Authenticator
    csrf_secret: bytes
    hub_url: str | None = None  # None: the bridge_hub Connection
    data_dir: Path | None = None  # None: bridge.settings.data_dir()
    page_size: int = 50
    policy_loader: Callable[[], Any] = field(default_factory=_policy_cache)
    allowed_origins: tuple[str, ...] = ()
    roles: settings.UiRoles | None = None  # None: settings ui.user_roles / ui.default_role


def default_config() -> UiConfig:
    """The configuration inside Airflow's API server: Airflow's login, settings ``ui`` section."""
    try:
        ui = settings.cached().get("ui") or {}
    except settings.SettingsError as exc:
        log.warning("bridge UI: settings not readable (%s); using defaults", exc)
        ui = {}
    releasers = [str(name) for name in (ui.get("quarantine_releasers") or [])]
    by_role = bool(ui.get("release_by_airflow_role", True))
    origins: tuple[str, ...] = ()
    try:
        from airflow.configuration import conf

        base_url = str(conf.get("api", "base_url", fallback="") or "")
        origins = (base_url,) if base_url else ()
    except Exception:  # outside Airflow
        origins = ()
    return UiConfig(
        authenticator=AirflowAuthenticator(releasers=releasers, release_by_airflow_role=by_role),
        csrf_secret=airflow_secret(),
        page_size=int(ui.get("page_size", 50)),
        allowed_origins=origins,
    )
