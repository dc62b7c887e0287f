"""The Airflow plugin of the OA ⇄ CRM bridge: its own pages inside the Airflow UI.

Adds a FastAPI app under ``/bridge`` in the API server (behind Airflow's own
login) and one navigation entry per page, grouped under "OA ⇄ CRM" in the
Plugins menu; each page opens embedded in the Airflow UI.

Every Airflow component imports this module, so it imports nothing heavy:
the FastAPI app (FastAPI, Jinja, SQLAlchemy, the bridge package) is built on
the first request that reaches it, inside the API server only.

It also registers ``WorkdayTimetable`` (Chinese working days, see
``bridge.timetables``): a DAG serialised with a custom timetable can only be
decoded by a process that has the class registered by a plugin, so the
scheduler and the DAG processor must load this plugin (they do: it is in the
plugins folder). ``bridge.timetables`` imports only Airflow's timetable base
and the standard library; the holiday package is imported on first use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from bridge.hooks import connection_notes
from bridge.timetables import WorkdayTimetable

# The Connections page's Test of oa_default / crm_default also reports events: subscriptions and deliveries
# seen (bridge.events.status reads the hub, which the hooks may not; imported only when a Test runs).
connection_notes.register("oa", "bridge.events.status:oa_notes")
connection_notes.register("crm", "bridge.events.status:crm_notes")

log = logging.getLogger(__name__)

MOUNT_PREFIX = "/bridge"  # same as bridge.ui.MOUNT_PREFIX (not imported: keep this module light)
CATEGORY = "OA ⇄ CRM"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyBridgeApp:
    """An ASGI app that builds ``bridge.ui.app.create_app()`` on its first request.

    If the app cannot be built (a broken install), every request answers 500
    with the reason and the API server log has the traceback; Airflow itself
    keeps working.
    """

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                from bridge.ui.app import create_app

                self._app = create_app()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to start or stop
            return
        try:
            app = self._app or self._build()
        except Exception as exc:
            log.exception("bridge UI: the pages cannot be loaded")
            body = f"数据桥页面无法加载（{type(exc).__name__}）。请查看 Airflow API 服务日志。".encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)


def _root_path() -> str:
    """The path Airflow is served under (``[api] base_url``), so links work behind a path prefix."""
    base_url = conf.get("api", "base_url", fallback="") or ""
    return urlsplit(base_url).path.rstrip("/")


def _pages() -> list[dict[str, Any]]:
    root = _root_path()
    pages = [
        ("经营日报", "reports", "bridge-reports"),
        ("数据健康", "health", "bridge-health"),
        ("隔离区", "quarantine", "bridge-quarantine"),
        ("同步状态", "sync", "bridge-sync"),
        ("历史迁移", "migration", "bridge-migration"),
        ("客户文件", "documents", "bridge-documents"),  # attachments of a customer in both systems
        ("客户旅程", "journey", "bridge-journey"),  # a customer across both systems, funnel per campaign
        ("绩效与满意度", "journey/people", "bridge-journey-people"),  # PIPL: rows for HR and the chain only
        ("大屏", "wallboard", "bridge-wallboard"),  # full screen for the office TV; kiosk links: docs/ui.md
    ]
    return [
        {
            "name": name,
            "href": f"{root}{MOUNT_PREFIX}/{path}",
            "url_route": route,  # shown embedded at /plugin/<url_route>
            "destination": "nav",
            "category": CATEGORY,
            "icon": f"{root}{MOUNT_PREFIX}/static/bridge.svg",
        }
        for name, path, route in pages
    ]


class BridgePlugin(AirflowPlugin):
    """OA ⇄ CRM bridge pages: 经营日报, 数据健康, 隔离区, 同步状态, 历史迁移."""

    name = "oa_crm_bridge"
    fastapi_apps = [{"app": LazyBridgeApp(), "url_prefix": MOUNT_PREFIX, "name": "OA ⇄ CRM bridge pages"}]
    external_views = _pages()
    timetables = [WorkdayTimetable]
