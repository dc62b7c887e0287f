"""``/journey`` (客户旅程) and ``/journey/people`` (绩效与满意度): customer search, timeline, funnel per campaign;
performance beside customer satisfaction under the PIPL rules of :mod:`bridge.journey.views`.

- ``/journey?q=``                  search customers by name or USCC (the viewer's customers only), funnel per campaign
- ``/journey/customer/{id}``       one customer's timeline across both systems, through the viewer's role
- ``/journey/people?period=``      绩效与满意度: individual rows for 人力资源部 and the management chain (audited),
                                   groups of at least ``journey.min_group_size`` people for everyone else
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from bridge import settings
from bridge.journey import marts, views
from bridge.journey.stats import METHOD_LABELS
from bridge.journey.view_settings import JourneyViews, journey_views
from bridge.permissions import Policy
from bridge.ui.auth import Forbidden, Viewer
from bridge.ui.deps import Pages, pages_of, require_viewer
from bridge.ui.errors import BadRequest, NotFound, PermissionConfigError
from bridge.ui.rendering import render_html

router = APIRouter()
MAX_QUERY = 60
FACTS = views.FactsCache()  # whole-hub facts shared by the viewers of this process


@dataclass(frozen=True)
class _Seat:
    """The viewer's place: policy, settings, who they are, their projection."""

    pages: Pages
    policy: Policy
    cfg: JourneyViews
    looker: views.Looker
    projection: marts.Projection


def _seat(request: Request, viewer: Viewer) -> _Seat:
    pages = pages_of(request)
    policy = pages.policy()
    try:
        cfg = journey_views(settings.cached())
    except settings.SettingsError as exc:
        raise PermissionConfigError(
            f"客户旅程配置（include/settings.yaml 的 journey）有误，页面不显示任何数据。{exc}"
        ) from exc
    return _Seat(
        pages,
        policy,
        cfg,
        views.Looker.of(viewer.name, viewer.role, cfg),
        marts.Projection(policy, viewer.role),
    )


def _facts(seat: _Seat, kind: str, compute: Callable[[], Any]) -> tuple[Any, datetime]:
    """Whole-hub facts of ``kind`` from the cache (``journey_views.cache_seconds``) and when they were computed."""
    url = seat.pages.config.hub_url or "default"
    value, at = FACTS.get((url, kind), seat.cfg.cache_seconds, compute)
    return value, datetime.fromtimestamp(at, UTC)


@router.get("/journey", response_class=HTMLResponse, name="journey")
def journey(request: Request, q: str | None = None, viewer: Viewer = Depends(require_viewer)) -> Response:
    seat = _seat(request, viewer)
    text = (q or "").strip()
    if len(text) > MAX_QUERY:
        raise BadRequest(
            f"搜索内容过长（{len(text)} 个字符），请输入不超过 {MAX_QUERY} 个字符的客户名称或统一社会信用代码。"
        )
    scope = views.customer_scope(seat.looker, seat.cfg)
    with seat.pages.hub().connect() as conn:
        found = (
            marts.find_customers(conn, text, owners=scope, by_uscc=seat.projection.allowed("company", "uscc"))
            if text and scope != set()
            else []
        )
        funnel: views.FunnelView | None = None
        computed: datetime | None = None
        if viewer.role in seat.cfg.funnel_roles:
            facts, computed = _facts(seat, "funnel", lambda: marts.funnel_facts(conn))
            funnel = views.funnel_view(conn, seat.projection, facts)
    results = [{"id": s.source_id, **(seat.projection.shown("company", s.payload) or {})} for s in found]
    peak = max((r.contacts for r in funnel.rows), default=0) if funnel else 0
    return render_html(
        request,
        "journey.html",
        viewer,
        q=text,
        results=results,
        funnel=funnel,
        peak=max(peak, 1),
        unscoped=scope == set(),
        all_customers=scope is None,
        computed=computed,
    )


@router.get("/journey/customer/{company_id}", response_class=HTMLResponse, name="journey_customer")
def journey_customer(request: Request, company_id: str, viewer: Viewer = Depends(require_viewer)) -> Response:
    seat = _seat(request, viewer)
    scope = views.customer_scope(seat.looker, seat.cfg)
    with seat.pages.hub().connect() as conn:
        company = marts.store.get_snapshot(conn, "crm", "company", company_id[:64])
        if company is None or company.deleted:
            raise NotFound(
                f"没有编号为 {company_id[:64]} 的客户（或已在 CRM 中删除）。请从客户旅程页面重新搜索。"
            )
        if not views.may_see_customer(company, scope):
            raise Forbidden(
                "这位客户不属于你或你的下属，不能查看其客户旅程。如需查看，请联系管理员在 include/settings.yaml 的 "
                "journey.user_owners / journey.managers 中设置你的负责人关系。"
            )
        line = views.customer_timeline(
            conn,
            company.source_id,
            seat.projection,
            now=datetime.now(UTC),
            may_see_document=views.document_rule(seat.policy, viewer.role),
        )
    if line is None:
        raise NotFound(f"没有编号为 {company_id[:64]} 的客户。")
    labels = {e: d.label for e, d in seat.policy.dictionary.entities.items()}
    hidden = [(labels.get(e, "附件" if e == "document" else e), n) for e, n in sorted(line.hidden.items())]
    return render_html(
        request,
        "journey_customer.html",
        viewer,
        line=line,
        hidden=hidden,
        company=seat.projection.shown("company", company.payload) or {},
    )


@router.get("/journey/people", response_class=HTMLResponse, name="journey_people")
def journey_people(
    request: Request, period: str | None = None, viewer: Viewer = Depends(require_viewer)
) -> Response:
    seat = _seat(request, viewer)
    with seat.pages.hub().begin() as conn:
        facts, computed = _facts(seat, "people", lambda: marts.people_facts(conn))
        view = views.people_view(conn, seat.looker, seat.policy, seat.cfg, period, facts)
        if period and view.period is not None and view.period.id != period:
            raise BadRequest(
                f"考核周期 {period[:40]!r} 不存在；可选：{'、'.join(view.period_ids) or '（暂无）'}。"
            )
        views.audit_personal_view(
            conn, seat.looker, seat.policy, [(r.owner_id, r.period_id) for r in view.rows], "/journey/people"
        )
    return render_html(
        request,
        "journey_people.html",
        viewer,
        view=view,
        cfg=seat.cfg,
        method_label=METHOD_LABELS[seat.cfg.correlation],
        full_page=viewer.role in seat.cfg.people_page_roles or view.individual,
        computed=computed,
    )
