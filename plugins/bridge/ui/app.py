"""The FastAPI app of the bridge pages, mounted by the Airflow plugin under ``/bridge``.

Pages (Chinese, server-rendered, no JavaScript):

- ``/``                       overview
- ``/reports``                经营日报 by date: open the HTML, download the XLSX
- ``/health``                 数据健康: scores with a 30-day trend, failed checks, daily summaries
- ``/data-docs/…``             the Great Expectations Data Docs site, served from the data folder
- ``/quarantine``             隔离区: list with filters and paging; ``/quarantine/{id}`` one record, masked
- ``/quarantine/{id}/release`` POST: release by an authorised user (CSRF token + confirmation)
- ``/sync``                   同步状态: watermarks and lag, last runs, quarantine backlog
- ``/migration``              历史迁移: runs and their report files

Every route needs an Airflow login (see :mod:`bridge.ui.auth`) except
``/static`` (the stylesheet and icon, no data). A fresh install shows empty
states; a hub that is unreachable or not migrated shows what to do (503).
"""

from __future__ import annotations

import csv
import io
import logging
import mimetypes
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.staticfiles import StaticFiles

from bridge import people, settings, workdays
from bridge.context import RunContext
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.sync.freshness import sync_freshness
from bridge.ui import display, files, queries
from bridge.ui.auth import (
    AirflowAuthenticator,
    Authenticator,
    CsrfGuard,
    Forbidden,
    NotAuthenticated,
    Viewer,
    airflow_secret,
    same_site_request,
)
from bridge.ui.queries import HubUnavailable

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
UI_DAG_ID = "bridge-ui"  # dag_id stamped on audit entries written from the pages
MAX_PAGE = 100_000
EXPORT_LIMIT = 10_000  # quarantine entries per CSV export
TREND_DAYS = 30

# Served files are produced by the bridge, but their content comes from business
# data: no inline script may run in Airflow's origin, nothing may be framed by others.
FILE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


# ---------------------------------------------------------------- errors


class BadRequest(Exception):
    """A query or form value the pages cannot use; the message says which and what is allowed."""


class NotFound(Exception):
    """Nothing at this address; the message says what was looked for."""


class Conflict(Exception):
    """The action no longer applies (e.g. the entry was released meanwhile)."""


class PermissionConfigError(Exception):
    """The permission policy or the viewer → role settings cannot be used: no page shows data (fail closed)."""


# ---------------------------------------------------------------- configuration


class _PolicyCache:
    """The permission policy, reloaded at most once a minute (a YAML edit needs no restart)."""

    def __init__(self, ttl_seconds: float = 60) -> None:
        self.ttl = ttl_seconds
        self._value: tuple[float, Any] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._value is not None and time.monotonic() - self._value[0] < self.ttl:
                return self._value[1]
            from bridge import permissions

            policy = permissions.load()
            self._value = (time.monotonic(), policy)
            return policy


@dataclass
class UiConfig:
    """What the app needs from its surroundings; tests pass their own."""

    authenticator: Authenticator
    csrf_secret: bytes
    hub_url: str | None = None  # None: the bridge_hub Connection
    data_dir: Path | None = None  # None: bridge.settings.data_dir()
    page_size: int = 50
    policy_loader: Callable[[], Any] = field(default_factory=_PolicyCache)
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


# ---------------------------------------------------------------- templates


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        local_time=display.local_time,
        duration=display.duration_text,
        reason=display.reason_label,
        entity=display.entity_label,
        direction=display.direction_label,
        resolution=display.resolution_label,
        scrub=display.scrub_personal,
        counts=display.counts_text,
        count_rows=display.count_rows,
        stream=display.stream_label,
        yuan=display.yuan,
        number=display.number,
        department=display.department_label,
        short=display.first_lines,
        score_class=display.score_class,
        lag_class=display.lag_class,
        run_kind=lambda k: display.RUN_KIND_LABELS.get(k, k),
        run_status=lambda s: display.RUN_STATUS_LABELS.get(s, s),
        urlpart=lambda s: quote(str(s), safe=""),
    )
    env.globals.update(
        calendar_banner=workdays.banner_text,  # None, or the working-day calendar's warning
        scope_labels=display.SCOPE_LABELS,
        reason_advice=display.REASON_ADVICE,
        show_value=display.show_value,
        run_seconds=display.run_seconds,
        field_label=display.field_label,
        query_string=display.query_string,
    )
    return env


_env_lock = threading.Lock()
_env: list[jinja2.Environment] = []


def templates() -> jinja2.Environment:
    with _env_lock:
        if not _env:
            _env.append(_environment())
        return _env[0]


# ---------------------------------------------------------------- the app


def create_app(config: UiConfig | None = None) -> FastAPI:
    """The bridge pages; ``config`` defaults to Airflow's login and the bridge_hub Connection."""
    cfg = config or default_config()
    csrf = CsrfGuard(cfg.csrf_secret)
    url_cache = queries.UrlCache()
    app = FastAPI(title="OA ⇄ CRM bridge pages", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = cfg

    def data_dir() -> Path:
        return cfg.data_dir or settings.data_dir()

    def area(name: str) -> Path:
        return data_dir() / name

    def hub_engine_() -> Engine:
        url = cfg.hub_url or url_cache.get()
        queries.check_sqlite_file(url)  # a page view must not create an empty hub file
        try:
            engine = hub_engine.get_engine(url)
        except Exception as exc:  # a URL SQLAlchemy cannot use
            raise HubUnavailable(
                "中枢库地址无法使用，请检查 Airflow Connection bridge_hub。", f"{type(exc).__name__}: {exc}"[:300]
            ) from exc
        queries.check_hub(engine)
        return engine

    # ------------------------------------------------------------ plumbing

    def render(request: Request, template: str, viewer: Viewer | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        html = templates().get_template(template).render(
            base=base, viewer=viewer, request_path=request.url.path,
            now=datetime.now(UTC), **context,
        )
        return HTMLResponse(html, status_code=status)

    def error_page(request: Request, status: int, title: str, message: str, detail: str = "",
                   viewer: Viewer | None = None) -> HTMLResponse:
        return render(request, "error.html", viewer, status=status, title=title, message=message, detail=detail)

    def policy() -> Any:
        try:
            return cfg.policy_loader()
        except Exception as exc:  # fail closed: no page without a usable policy
            log.warning("bridge UI: permission policy unavailable: %s", exc)
            from bridge.permissions import PolicyError

            why = f"：{str(exc)[:500]}" if isinstance(exc, PolicyError) else "。"  # PolicyError speaks Chinese
            raise PermissionConfigError(
                "权限策略（include/permissions.yaml）无法加载，页面不显示任何数据。请管理员运行 `bridge dictionary check` "
                f"查看并修复问题{why}"
            ) from exc

    def with_role(viewer: Viewer) -> Viewer:
        """The viewer with the policy role of settings ``ui.user_roles`` (not listed: ``ui.default_role``)."""
        current = policy()
        try:
            roles = cfg.roles or settings.ui_roles(settings.cached())
            roles.check(current.roles, str(current.path))
        except settings.SettingsError as exc:
            log.warning("bridge UI: viewer roles unusable: %s", exc)
            raise PermissionConfigError(f"用户角色配置有误，页面不显示任何数据。{exc}") from exc
        role = roles.role_of(viewer.name)
        return replace(viewer, role=role, role_label=current.roles[role])

    async def require_viewer(request: Request) -> Viewer:
        viewer = with_role(await cfg.authenticator(request))
        request.state.bridge_viewer = viewer
        return viewer

    def names_of(conn: Any, ids: Any) -> dict[str, str]:
        return people.names(conn, ids)

    def department_labels() -> dict[str, str]:
        return {key: dept.label for key, dept in policy().dictionary.departments.items()}

    def audience_check(kind: str, name: str, viewer: Viewer, what: str) -> None:
        """Refuse a file built for a wider audience than the viewer's role (no per-role variants are built)."""
        current = policy()
        audience = current.audience(kind, name)
        if current.covers(viewer.role, audience):
            return
        allowed = "、".join(current.roles[r] for r in current.roles_covering(audience))
        raise Forbidden(
            f"{what}按「{current.roles[audience]}」的权限生成，含你的角色（{viewer.role_label}）不能查看的字段（如金额、电话），"
            f"因此不能打开或下载。可以查看的角色：{allowed}。如需查看，请联系管理员在 include/settings.yaml 的 "
            "ui.user_roles 中为你的 Airflow 用户设置相应角色。"
        )

    def may_open(kind: str, name: str, viewer: Viewer) -> bool:
        current = policy()
        return bool(current.covers(viewer.role, current.audience(kind, name)))

    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if request.method == "GET" and wants_html and exc.login_url:
            return RedirectResponse(exc.login_url, status_code=302)
        response = error_page(request, 401, "需要登录", "请先登录 Airflow，再打开本页面。", exc.reason)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return error_page(request, 403, "没有权限", str(exc), viewer=_viewer_of(request))

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> Response:
        return error_page(request, 400, "请求参数有误", str(exc), viewer=_viewer_of(request))

    @app.exception_handler(files.UnsafePath)
    async def _unsafe(request: Request, exc: files.UnsafePath) -> Response:
        return error_page(request, 400, "路径不合法", str(exc), viewer=_viewer_of(request))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return error_page(request, 404, "没有找到", str(exc), viewer=_viewer_of(request))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return error_page(request, 409, "操作未执行", str(exc), viewer=_viewer_of(request))

    @app.exception_handler(PermissionConfigError)
    async def _permission_config(request: Request, exc: PermissionConfigError) -> Response:
        return error_page(request, 503, "权限配置有误", str(exc), viewer=_viewer_of(request))

    @app.exception_handler(HubUnavailable)
    async def _hub(request: Request, exc: HubUnavailable) -> Response:
        log.warning("bridge UI: hub unavailable: %s %s", exc.message, exc.detail)
        return error_page(request, 503, "中枢库不可用", exc.message, exc.detail, viewer=_viewer_of(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [display.validation_problem(err) for err in exc.errors()]
        return error_page(request, 422, "请求参数有误", "参数不符合要求：" + "；".join(problems) + "。请检查地址后重试。",
                          viewer=_viewer_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: ("没有找到", "没有这个页面。请从上方导航进入。"), 405: ("方法不允许", "该地址不支持这种请求方式。")}
        title, message = titles.get(exc.status_code,
                                    ("请求失败", f"请求未能完成（状态码 {exc.status_code}）。请返回后重试，或联系管理员。"))
        return error_page(request, exc.status_code, title, message, viewer=_viewer_of(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("bridge UI: unexpected error on %s", request.url.path)
        return error_page(request, 500, "页面出错", "页面处理时发生意外错误，已记录在 Airflow API 服务日志中。请稍后重试或联系管理员。",
                          viewer=_viewer_of(request))

    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # ------------------------------------------------------------ overview

    @app.get("/", response_class=HTMLResponse, name="index")
    def index(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
        engine = hub_engine_()
        with engine.connect() as conn:
            open_total = store.count_quarantine(conn)
            latest_runs = queries.latest_run_per_kind(conn)
            reports = queries.report_runs(conn, limit=1)
            health_day = queries.latest_health_day(conn)
            overall = None
            if health_day is not None:
                overall = next((s for s in queries.health_scores(conn, health_day)
                                if s.scope_type == "overall"), None)
            migrations = queries.migration_runs(conn, limit=1)
        return render(request, "index.html", viewer, open_total=open_total, latest_runs=latest_runs,
                      report=reports[0] if reports else None, health_day=health_day, overall=overall,
                      migration=migrations[0] if migrations else None)

    # ------------------------------------------------------------ reports

    @app.get("/reports", response_class=HTMLResponse, name="reports")
    def reports(request: Request, day: str | None = None, viewer: Viewer = Depends(require_viewer)) -> Response:
        wanted = _parse_day(day) if day else None
        base = area("reports")
        with hub_engine_().connect() as conn:
            runs = [queries.get_report_run(conn, wanted)] if wanted else queries.report_runs(conn)
        rows = []
        registered = set()
        amounts_visible = bool(policy().allowed("deal", "contract_amount", viewer.role))
        for run in runs:
            if run is None:
                continue
            registered.add(run.day)
            html = files.confined(base, run.html_path, data_dir())
            xlsx = files.confined(base, run.xlsx_path, data_dir())
            rows.append({"day": run.day, "run": run, "html_ok": bool(html and html.is_file()),
                         "xlsx_ok": bool(xlsx and xlsx.is_file()),
                         "headline": display.headline(run.figures, amounts_visible),
                         "recipients": [display.scrub_personal(r) for r in run.recipients]})
        unregistered = []
        for folder_day in files.day_folders(base):
            if folder_day in registered or (wanted and folder_day != wanted):
                continue
            unregistered.append({"day": folder_day, "files": files.files_in(base, base / folder_day.isoformat())})
        current = policy()
        audience = current.audience("report", "daily_report")
        return render(request, "reports.html", viewer, rows=rows, unregistered=unregistered, wanted=wanted,
                      today=display.business_today(), may_open=current.covers(viewer.role, audience),
                      audience_label=current.roles[audience],
                      allowed_labels="、".join(current.roles[r] for r in current.roles_covering(audience)))

    def _report_file(day: str, kind: str) -> tuple[Path, str]:
        wanted = _parse_day(day)
        base = area("reports")
        with hub_engine_().connect() as conn:
            run = queries.get_report_run(conn, wanted)
        stored = (run.html_path if kind == "html" else run.xlsx_path) if run else None
        path = files.confined(base, stored, data_dir()) if stored else None
        if path is None:  # not registered (or outside the folder): the day folder's only file of that kind
            folder = base / wanted.isoformat()
            suffix = ".html" if kind == "html" else ".xlsx"
            found = [f for f in files.files_in(base, folder) if f.name.endswith(suffix)]
            path = (base / found[0].rel).resolve() if len(found) == 1 else None
        if path is None or not path.is_file():
            raise NotFound(f"{wanted.isoformat()} 的经营日报{'网页' if kind == 'html' else '表格'}文件不存在。"
                           "日报由 daily_report 每天 08:00 生成；如需补做，请在 Airflow 中手动触发 daily_report。")
        return path, wanted.isoformat()

    @app.get("/reports/{day}/html", name="report_html")
    def report_html(day: str, viewer: Viewer = Depends(require_viewer)) -> Response:
        audience_check("report", "daily_report", viewer, "经营日报")
        path, _ = _report_file(day, "html")
        return FileResponse(path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": FILE_CSP})

    @app.get("/reports/{day}/xlsx", name="report_xlsx")
    def report_xlsx(day: str, viewer: Viewer = Depends(require_viewer)) -> Response:
        audience_check("report", "daily_report", viewer, "经营日报")
        path, label = _report_file(day, "xlsx")
        return FileResponse(
            path,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            filename=f"经营日报-{label}.xlsx",
        )

    @app.get("/files/{area_name}/{rel:path}", name="area_file")
    def area_file(area_name: str, rel: str, viewer: Viewer = Depends(require_viewer)) -> Response:
        if area_name not in files.AREAS:  # data_docs too: the daily summaries link ../../data_docs/
            raise NotFound("没有这个文件目录。")
        if area_name == "reports":  # the report folders hold what the report's audience sees
            audience_check("report", "daily_report", viewer, "经营日报")
        elif area_name == "migration":
            audience_check("export", "migration", viewer, "历史迁移报告")
        return _serve(area(area_name), rel)

    # ------------------------------------------------------------ data health

    @app.get("/health", response_class=HTMLResponse, name="health")
    def health(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
        with hub_engine_().connect() as conn:
            latest = queries.latest_health_day(conn)
            scores = queries.health_scores(conn, latest - timedelta(days=TREND_DAYS - 1)) if latest else []
            failed = queries.failed_checks(conn, latest) if latest else []
            owner_names = names_of(conn, [s.scope for s in scores if s.scope_type == "data_owner"])
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        by_scope: dict[tuple[str, str], dict[date, float]] = defaultdict(dict)
        latest_row: dict[tuple[str, str], queries.ScoreRow] = {}
        for s in scores:
            by_scope[(s.scope_type, s.scope)][s.day] = s.score
            latest_row[(s.scope_type, s.scope)] = s  # rows come ordered by day
        for key, series in by_scope.items():
            row = latest_row[key]
            groups[key[0]].append({"scope": key[1], "row": row, "current": row.day == latest,
                                   "trend": display.trend(series, latest or row.day, TREND_DAYS)})
        for rows in groups.values():
            rows.sort(key=lambda r: (r["trend"].latest if r["trend"].latest is not None else 101, r["scope"]))
        overall = groups.pop("overall", [])
        docs_base = area("data_docs")
        docs_index = files.find_index(docs_base)
        summaries_base = area("data_health")
        summaries = [{"day": d, "files": files.files_in(summaries_base, summaries_base / d.isoformat())}
                     for d in files.day_folders(summaries_base, limit=TREND_DAYS)]
        return render(request, "health.html", viewer, latest=latest, overall=overall[0] if overall else None,
                      groups=[(t, groups[t]) for t in ("entity", "department", "data_owner") if groups.get(t)],
                      other_groups=[(t, rows) for t, rows in groups.items()
                                    if t not in ("entity", "department", "data_owner")],
                      failed=failed, docs_index=docs_index, summaries=summaries, trend_days=TREND_DAYS,
                      owner_names=owner_names, dept_labels=department_labels(), dictionary=policy().dictionary)

    @app.get("/data-docs", name="data_docs_root")
    def data_docs_root(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
        index_rel = files.find_index(area("data_docs"))
        if index_rel is None:
            return render(request, "data_docs_empty.html", viewer)
        base = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(f"{base}/data-docs/{index_rel}", status_code=302)

    @app.get("/data-docs/{rel:path}", name="data_docs")
    def data_docs(request: Request, rel: str, viewer: Viewer = Depends(require_viewer)) -> Response:
        if rel in ("", "/"):
            return data_docs_root(request, viewer)
        found = files.data_docs_file(area("data_docs"), rel)
        if found is None:
            raise NotFound("文件不存在。数据文档可能尚未生成，或已在下一次数据健康检查时重建。")
        return FileResponse(found.path, media_type=found.media_type, filename=found.path.name if found.download
                            else None, headers={"Content-Security-Policy": files.DATA_DOCS_CSP})

    # ------------------------------------------------------------ quarantine

    @app.get("/quarantine", response_class=HTMLResponse, name="quarantine")
    def quarantine_list(request: Request, page: str | None = None,
                        filters: dict[str, str | None] = Depends(quarantine_query),
                        viewer: Viewer = Depends(require_viewer)) -> Response:
        number = _parse_page(page)
        with hub_engine_().connect() as conn:
            total = store.count_quarantine(
                conn, reason=filters["reason"], department=filters["department"], data_owner=filters["owner"],
                entity=filters["entity"], open_only=filters["status"] == "open", direction=filters["direction"],
            )
            paging = display.Page(number, cfg.page_size, total)
            entries = _entries(conn, filters, paging.size, paging.offset)
            facets = queries.quarantine_facets(conn)
            backlog = store.quarantine_backlog(conn)
            owner_names = names_of(conn, [e.data_owner for e in entries] + facets.owners)
        params = {k: v for k, v in filters.items() if v and not (k == "status" and v == "open")}
        return render(request, "quarantine_list.html", viewer, entries=entries, paging=paging, filters=filters,
                      params=params, facets=facets, backlog=backlog, directions=store.QUARANTINE_DIRECTIONS,
                      all_reasons=sorted(store.REASON_CODES), owner_names=owner_names,
                      dept_labels=department_labels(), shown=[entry_view(e, viewer) for e in entries])

    def entry_view(entry: store.QuarantineEntry, viewer: Viewer) -> dict[str, str]:
        """What a viewer may read of an entry's message and field (the offending value hidden when not theirs)."""
        current = policy()
        clear = display.field_visible_in_clear(current, entry.entity, entry.field, viewer.role)
        label = display.field_label(entry.entity, entry.field, current.dictionary)
        keep = (entry.source_id, label, display.ENTITY_LABELS.get(entry.entity, ""))
        return {"message": display.redact_message(entry.message, clear, keep), "field": label}

    @app.get("/quarantine/export", name="quarantine_export")
    def quarantine_export(filters: dict[str, str | None] = Depends(quarantine_query),
                          viewer: Viewer = Depends(require_viewer)) -> Response:
        """The filtered list as CSV, every record through the viewer's own role (a per-role export)."""
        with hub_engine_().connect() as conn:
            entries = _entries(conn, filters, EXPORT_LIMIT, 0)
            names = names_of(conn, [e.data_owner for e in entries]
                             + [str((e.payload or {}).get(k) or "") for e in entries for k in display.PERSON_FIELDS])
        current, depts = policy(), department_labels()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["编号", "状态", "方向", "对象", "记录编号", "原因", "字段", "部门", "数据责任人", "说明（请按此处理）",
                         "最近出现（北京时间）", "记录内容（按你的角色脱敏）"])
        for e in entries:
            shown = entry_view(e, viewer)
            content = ""
            if e.payload is not None:
                view = display.payload_view(current, e.entity, e.payload, viewer.role, names)
                content = display.payload_text(view)
            writer.writerow([e.id, display.resolution_label(e.resolution) if not e.is_open else "待处理",
                             display.direction_label(e.direction), display.ENTITY_LABELS.get(e.entity, e.entity),
                             e.source_id, display.REASON_LABELS.get(e.reason_code, e.reason_code), shown["field"],
                             display.department_label(e.department, depts), names.get(e.data_owner or "", e.data_owner or ""),
                             shown["message"], display.local_time(e.last_seen_at), content])
        log.info("bridge UI: quarantine export of %s entries by %s (role %s)", len(entries), viewer.name, viewer.role)
        stamp = display.business_today().isoformat()
        return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(f'隔离区-{stamp}.csv')}"})

    @app.get("/quarantine/{entry_id}", response_class=HTMLResponse, name="quarantine_entry")
    def quarantine_entry(request: Request, entry_id: int, viewer: Viewer = Depends(require_viewer)) -> Response:
        _check_id(entry_id)
        with hub_engine_().connect() as conn:
            entry = store.get_quarantine(conn, entry_id)
            if entry is None:
                raise NotFound(f"没有编号为 {entry_id} 的隔离记录。请回到隔离区列表查看现有记录。")
            history = queries.quarantine_history(conn, entry.entity, entry.id)
            payload = entry.payload or {}
            names = names_of(conn, [entry.data_owner] + [str(payload.get(k) or "") for k in display.PERSON_FIELDS])
        view: display.PayloadView | None = None
        payload_problem: str | None = None
        if entry.payload is not None:
            try:
                view = display.payload_view(policy(), entry.entity, entry.payload, viewer.role, names)
            except Exception as exc:  # fail closed: never show an unfiltered record
                log.warning("bridge UI: quarantine entry %s not shown: %s", entry.id, exc)
                payload_problem = "权限策略无法应用到这条记录"
        released = request.query_params.get("released") == "1"
        return render(request, "quarantine_entry.html", viewer, entry=entry, view=view,
                      payload_problem=payload_problem, history=history, released=released,
                      csrf_token=csrf.token(viewer.name), shown=entry_view(entry, viewer), owner_names=names,
                      dept_labels=department_labels())

    @app.post("/quarantine/{entry_id}/release", name="quarantine_release")
    async def quarantine_release(request: Request, entry_id: int,
                                 viewer: Viewer = Depends(require_viewer)) -> Response:
        _check_id(entry_id)
        if not same_site_request(request, cfg.allowed_origins):
            raise Forbidden("请求来自其他网站，已拒绝。请在 Airflow 的隔离区页面中操作。")
        if not viewer.may_release:
            raise Forbidden(
                f"{viewer.name}，你没有释放隔离记录的权限。只有 Airflow 运维（Op）或管理员（Admin）角色，"
                "或配置在 ui.quarantine_releasers 中的处理人可以释放；请联系他们处理。"
            )
        form = await request.form()
        token = form.get("csrf_token")
        if not csrf.valid(viewer.name, token if isinstance(token, str) else None):
            raise Forbidden("页面已过期或表单无效（CSRF 校验未通过）。请刷新记录页面后重新释放。")
        if form.get("confirm") != "yes":
            raise BadRequest("请先勾选“我已确认源数据已修正或可以重试”，再点击释放。")
        ctx = RunContext.local(principal=viewer.name[:120], dag_id=UI_DAG_ID)
        try:
            with hub_engine_().begin() as conn:
                entry = store.release(conn, ctx, entry_id, viewer.name)
        except store.QuarantineNotFound as exc:
            raise NotFound(f"没有编号为 {entry_id} 的隔离记录。") from exc
        except store.QuarantineAlreadyResolved as exc:
            done = exc.entry
            raise Conflict(
                f"隔离记录 #{done.id} 已于 {display.local_time(done.resolved_at)}（北京时间）结案"
                f"（{display.resolution_label(done.resolution)}，处理人 {done.resolved_by or '-'}），无需再次释放。"
            ) from exc
        log.info("bridge UI: quarantine entry %s released by %s", entry.id, viewer.name)
        base = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(f"{base}/quarantine/{entry.id}?released=1", status_code=303)

    # ------------------------------------------------------------ sync status

    @app.get("/sync", response_class=HTMLResponse, name="sync")
    def sync(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
        now = datetime.now(UTC)
        with hub_engine_().connect() as conn:
            freshness = sync_freshness(conn, now)
            marks = queries.watermarks(conn)
            latest = queries.latest_run_per_kind(conn)
            runs = store.recent_runs(conn, limit=30)
            backlog = store.quarantine_backlog(conn)
        streams = []
        for mark in marks:
            value_at = display.from_epoch_ms(mark.value_ms)
            streams.append({"mark": mark, "value_at": value_at,
                            "lag": (now - value_at).total_seconds(),
                            "age": (now - mark.updated_at).total_seconds()})
        return render(request, "sync.html", viewer, freshness=list(freshness.values()), streams=streams,
                      latest=latest, runs=runs, backlog=backlog, backlog_total=sum(backlog.values()))

    # ------------------------------------------------------------ migration

    @app.get("/migration", response_class=HTMLResponse, name="migration")
    def migration(request: Request, viewer: Viewer = Depends(require_viewer)) -> Response:
        base = area("migration")
        with hub_engine_().connect() as conn:
            runs = queries.migration_runs(conn)
        rows = []
        for run in runs:
            html = files.confined(base, run.report_html, data_dir())
            csv = files.confined(base, run.report_csv, data_dir())
            rows.append({"run": run, "html_ok": bool(html and html.is_file()),
                         "csv_ok": bool(csv and csv.is_file())})
        return render(request, "migration.html", viewer, rows=rows,
                      may_open=may_open("export", "migration", viewer))

    @app.get("/migration/report", name="migration_report")
    def migration_report(run_id: str, kind: str = "html", viewer: Viewer = Depends(require_viewer)) -> Response:
        audience_check("export", "migration", viewer, "历史迁移报告")
        if kind not in ("html", "csv"):
            raise BadRequest("kind 只能是 html 或 csv。")
        if not run_id or len(run_id) > 250:
            raise BadRequest("run_id 不能为空，且不超过 250 个字符。")
        with hub_engine_().connect() as conn:
            run = queries.get_migration_run(conn, run_id)
        if run is None:
            raise NotFound(f"没有运行编号为 {run_id} 的历史迁移记录。")
        stored = run.report_html if kind == "html" else run.report_csv
        path = files.confined(area("migration"), stored, data_dir())
        if path is None or not path.is_file():
            raise NotFound("这次历史迁移的报告文件不存在（尚未生成，或不在 migration 目录中）。")
        if kind == "html":
            return FileResponse(path, media_type="text/html; charset=utf-8",
                                headers={"Content-Security-Policy": FILE_CSP})
        return FileResponse(path, media_type="text/csv; charset=utf-8", filename=path.name)

    from bridge.ui import wallboard  # 大屏 and its kiosk link (bridge/ui/wallboard.py)
    app.include_router(wallboard.router(require_viewer, hub_engine_))
    return app


# ---------------------------------------------------------------- helpers


class _SecurityHeaders(BaseHTTPMiddleware):
    """Pages are same-origin framable only (the Airflow UI embeds them), never cached, never sniffed."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.endswith(".css") and "/static/" not in request.url.path:
            headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response


def _viewer_of(request: Request) -> Viewer | None:
    viewer = getattr(request.state, "bridge_viewer", None)
    return viewer if isinstance(viewer, Viewer) else None


def _parse_day(raw: str) -> date:
    try:
        return date.fromisoformat(raw) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw) else _invalid_day(raw)
    except ValueError:
        return _invalid_day(raw)


def _invalid_day(raw: str) -> date:
    raise BadRequest(f"日期 {raw[:40]!r} 不合法，应为 YYYY-MM-DD，例如 2026-11-26。")


def _parse_page(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"页码 {raw[:20]!r} 不合法，应为 1 到 {MAX_PAGE} 之间的整数。")
    return int(raw)


def _check_id(entry_id: int) -> None:
    if not 1 <= entry_id <= 2**62:
        raise BadRequest("隔离记录编号应为正整数。")


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


def quarantine_query(reason: str | None = None, entity: str | None = None, department: str | None = None,
                     owner: str | None = None, direction: str | None = None,
                     status: str | None = None) -> dict[str, str | None]:
    """The quarantine filters of the query string (a FastAPI dependency of the list and the export)."""
    return _quarantine_filters(reason, entity, department, owner, direction, status)


def _entries(conn: Any, filters: Mapping[str, str | None], limit: int, offset: int) -> list[store.QuarantineEntry]:
    return store.list_quarantine(
        conn, reason=filters["reason"], department=filters["department"], data_owner=filters["owner"],
        entity=filters["entity"], open_only=filters["status"] == "open", limit=limit, offset=offset,
        direction=filters["direction"],
    )


def _quarantine_filters(reason: str | None, entity: str | None, department: str | None, owner: str | None,
                        direction: str | None, status: str | None) -> dict[str, str | None]:
    """The list filters, validated: unknown codes are a 400 that lists what is allowed."""
    def blank(value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    reason, entity, department = blank(reason), blank(entity), blank(department)
    owner, direction, status = blank(owner), blank(direction), blank(status)
    if reason is not None and reason not in store.REASON_CODES:
        raise BadRequest(f"原因 {reason[:40]!r} 未知；可选：{'、'.join(sorted(store.REASON_CODES))}。")
    if entity is not None and (len(entity) > 40 or not _NAME.match(entity)):
        raise BadRequest("对象（entity）应为数据字典中的英文名称，如 contact、deal。")
    if direction is not None and direction not in store.QUARANTINE_DIRECTIONS:
        raise BadRequest(f"方向 {direction[:30]!r} 未知；可选：{'、'.join(store.QUARANTINE_DIRECTIONS)}。")
    if department is not None and len(department) > 30:
        raise BadRequest("部门名称不能超过 30 个字符。")
    if owner is not None and len(owner) > 64:
        raise BadRequest("数据责任人不能超过 64 个字符。")
    if status is not None and status not in ("open", "all"):
        raise BadRequest("状态只能是 open（待处理）或 all（全部）。")
    return {"reason": reason, "entity": entity, "department": department, "owner": owner,
            "direction": direction, "status": status or "open"}


def _serve(base: Path, rel: str) -> Response:
    """A file of a data folder (confined); HTML with the file CSP, unknown types as downloads."""
    path = files.safe_join(base, rel)
    if not path.is_file():
        raise NotFound("文件不存在。它可能尚未生成，或已被清理。")
    media_type, _ = mimetypes.guess_type(path.name)
    headers: Mapping[str, str] = {"Content-Security-Policy": FILE_CSP}
    if media_type in ("text/html", "text/css", "text/javascript", "application/javascript", "application/json"):
        return FileResponse(path, media_type=f"{media_type}; charset=utf-8", headers=headers)
    if media_type in ("text/plain", "text/markdown"):  # summaries: readable in the browser
        return FileResponse(path, media_type="text/plain; charset=utf-8", headers=headers)
    if media_type in ("image/png", "image/svg+xml", "image/jpeg", "image/gif", "font/woff", "font/woff2"):
        return FileResponse(path, media_type=media_type, headers=headers)
    return FileResponse(path, media_type=media_type or "application/octet-stream", filename=path.name,
                        headers=headers)

