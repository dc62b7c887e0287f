"""What every page shares: the hub, the data folder, the permission policy and the viewer's role.

:func:`create_app <bridge.ui.app.create_app>` keeps one :class:`Pages` in
``app.state``; the routers reach it with :func:`pages_of` and the logged-in
viewer with the dependency :func:`require_viewer` (Airflow's login, then the
role of settings ``ui.user_roles``). A policy or role setting that cannot be
used refuses every page (fail closed).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from fastapi import Request
from sqlalchemy import Engine

from bridge import settings
from bridge.hub import engine as hub_engine
from bridge.ui import queries
from bridge.ui.auth import CsrfGuard, Forbidden, Viewer
from bridge.ui.config import Refreshed, UiConfig, connection_hub_url
from bridge.ui.errors import PermissionConfigError
from bridge.ui.queries import HubUnavailable
from bridge.ui.wallboard import FiguresCache

log = logging.getLogger(__name__)

# Served files are produced by the bridge, but their content comes from business
# data: no inline script may run in Airflow's origin, nothing may be framed by others.
FILE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


class Pages:
    """The surroundings of one app: configuration, CSRF guard, hub URL cache, the wallboard's figures."""

    def __init__(self, config: UiConfig) -> None:
        self.config = config
        self.csrf = CsrfGuard(config.csrf_secret)
        self.wallboard_figures = FiguresCache()  # one hub read for every screen of this app
        self._hub_url = Refreshed(connection_hub_url)

    def data_dir(self) -> Path:
        return self.config.data_dir or settings.data_dir()

    def area(self, name: str) -> Path:
        """A folder of the data folder (reports, data_health, migration, data_docs)."""
        return self.data_dir() / name

    def hub(self) -> Engine:
        """The hub, checked: present, reachable and at the code's schema revision (else a 503 page)."""
        url = self.config.hub_url or self._hub_url()
        queries.check_sqlite_file(url)  # a page view must not create an empty hub file
        try:
            engine = hub_engine.get_engine(url)
        except Exception as exc:  # a URL SQLAlchemy cannot use
            raise HubUnavailable(
                "中枢库地址无法使用，请检查 Airflow Connection bridge_hub。",
                f"{type(exc).__name__}: {exc}"[:300],
            ) from exc
        queries.check_hub(engine)
        return engine

    def policy(self) -> Any:
        """The permission policy; none usable means no page at all."""
        try:
            return self.config.policy_loader()
        except Exception as exc:  # fail closed: no page without a usable policy
            log.warning("bridge UI: permission policy unavailable: %s", exc)
            from bridge.permissions import PolicyError

            why = (
                f"：{str(exc)[:500]}" if isinstance(exc, PolicyError) else "。"
            )  # PolicyError speaks Chinese
            raise PermissionConfigError(
                "权限策略（include/permissions.yaml）无法加载，页面不显示任何数据。请管理员运行 `bridge dictionary check` "
                f"查看并修复问题{why}"
            ) from exc

    def with_role(self, viewer: Viewer) -> Viewer:
        """The viewer with the policy role of settings ``ui.user_roles`` (not listed: ``ui.default_role``)."""
        current = self.policy()
        try:
            roles = self.config.roles or settings.ui_roles(settings.cached())
            roles.check(current.roles, str(current.path))
        except settings.SettingsError as exc:
            log.warning("bridge UI: viewer roles unusable: %s", exc)
            raise PermissionConfigError(f"用户角色配置有误，页面不显示任何数据。{exc}") from exc
        role = roles.role_of(viewer.name)
        return replace(viewer, role=role, role_label=current.roles[role])

    def department_labels(self) -> dict[str, str]:
        return {key: dept.label for key, dept in self.policy().dictionary.departments.items()}

    def audience_check(self, kind: str, name: str, viewer: Viewer, what: str) -> None:
        """Refuse a file built for a wider audience than the viewer's role (no per-role variants are built)."""
        current = self.policy()
        audience = current.audience(kind, name)
        if current.covers(viewer.role, audience):
            return
        allowed = "、".join(current.roles[r] for r in current.roles_covering(audience))
        raise Forbidden(
            f"{what}按「{current.roles[audience]}」的权限生成，含你的角色（{viewer.role_label}）不能查看的字段（如金额、电话），"
            f"因此不能打开或下载。可以查看的角色：{allowed}。如需查看，请联系管理员在 include/settings.yaml 的 "
            "ui.user_roles 中为你的 Airflow 用户设置相应角色。"
        )

    def may_open(self, kind: str, name: str, viewer: Viewer) -> bool:
        current = self.policy()
        return bool(current.covers(viewer.role, current.audience(kind, name)))


def pages_of(request: Request) -> Pages:
    """The :class:`Pages` of the app serving this request."""
    return cast(Pages, request.app.state.pages)


async def require_viewer(request: Request) -> Viewer:
    """The logged-in viewer with their policy role (a FastAPI dependency of every page but the kiosk links)."""
    pages = pages_of(request)
    viewer = pages.with_role(await pages.config.authenticator(request))
    request.state.bridge_viewer = viewer
    return viewer
