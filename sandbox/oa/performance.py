"""Feishu 绩效 (Performance) open API of the OA simulator: review periods and review results.

Read-only, as the bridge uses it: ``GET /open-apis/performance/v1/semesters`` (评估周期),
``POST /open-apis/performance/v2/activity/query`` (项目 = a review activity of a period) and
``POST /open-apis/performance/v1/review_datas/query`` (绩效结果 per reviewee and period), and
``POST /open-apis/performance/v2/reviewees/query`` (被评估人 of one period). Shapes from
``sandbox/specs/feishu/performance.yaml``; only the last pages (``page_size``, ``page_token``,
``has_more``), as the spec has it: for the others a client narrows by period and reviewee list.

The data are a pure function of the tenant's people and its world seed: four half-year periods
(2025 H1 … 2026 H2), one activity each, and for every sales person of a finished period a rating
(S/A/B/C/D with a score) given by the department's 销售主管 in the 上级评估 stage and opened in the
结果沟通 stage. Nothing is stored, so a reseed or a reset gives the same answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.oa.errors import FeishuError

if TYPE_CHECKING:
    from sandbox.oa.app import SimState

# performance.yaml x-lark-error-mappings
PARAM_INVALID = 1580102  # "param is invalid"
INVALID_SEMESTER = 1580105  # "invalid semester ID" (reviewees/query)
PAGE_TOKEN_INVALID = 1580107  # "page token invalid" (reviewees/query)
MESSAGES = {
    PARAM_INVALID: "param is invalid",
    INVALID_SEMESTER: "invalid semester ID",
    PAGE_TOKEN_INVALID: "page token invalid",
}
DEFAULT_PAGE_SIZE = 20  # reviewees/query page_size default (the spec gives no maximum)
SH = timedelta(hours=8)
TYPE_GROUPS = {"H1": "Semi-annual", "H2": "Semi-annual"}
RATED_ROLES = ("employee", "sales_manager", "project_manager")
INDICATOR_ID = "7300000000000000101"  # 绩效等级
FIELD_ID = "7300000000000000201"  # 最终绩效等级
TEMPLATE_ID = "7300000000000000301"
UNIT_ID = "7300000000000000401"
# (option id, label, zh name, score, weight in the draw)
RATINGS: tuple[tuple[str, str, str, str, int], ...] = (
    ("7300000000000000111", "S", "卓越", "95", 1),
    ("7300000000000000112", "A", "优秀", "85", 3),
    ("7300000000000000113", "B", "良好", "75", 5),
    ("7300000000000000114", "C", "待改进", "62", 2),
    ("7300000000000000115", "D", "不合格", "45", 1),
)
REVIEW_STAGES = ("leader_review", "communication_and_open_result")


@dataclass(frozen=True)
class Semester:
    """One review period (评估周期) and its activity (项目)."""

    id: str
    activity_id: str
    year: int
    type: str
    start_ms: int
    end_ms: int

    @property
    def name_zh(self) -> str:
        return f"{self.year}年{'上' if self.type == 'H1' else '下'}半年"

    def json(self) -> dict[str, Any]:
        """A ``semesters`` item as the spec's ``Semester`` schema has it (int64 times as strings)."""
        created = str(self.start_ms - 14 * 86_400_000)
        return {
            "id": self.id,
            "year": self.year,
            "type_group": TYPE_GROUPS[self.type],
            "type": self.type,
            "name": {"zh-CN": self.name_zh, "en-US": f"{self.year} {self.type}"},
            "progress": "enabled",
            "start_time": str(self.start_ms),
            "end_time": str(self.end_ms),
            "create_time": created,
            "modify_time": created,
            "create_user_id": "",
            "modify_user_id": "",
        }


def _shanghai_ms(year: int, month: int, day: int) -> int:
    return int((datetime(year, month, day, tzinfo=UTC) - SH).timestamp() * 1000)


def semesters() -> list[Semester]:
    """2025 H1 … 2026 H2; ids are stable Feishu-looking numbers."""
    out = []
    for year in (2025, 2026):
        for half, (start, end) in (("H1", ((1, 1), (7, 1))), ("H2", ((7, 1), (1, 1)))):
            end_year = year + 1 if half == "H2" else year
            n = f"{year}{half[1]}"
            out.append(
                Semester(
                    id=f"73{n}0000000001",
                    activity_id=f"74{n}0000000001",
                    year=year,
                    type=half,
                    start_ms=_shanghai_ms(year, *start),
                    end_ms=_shanghai_ms(end_year, *end) - 1,
                )
            )
    return out


def _rating(world_seed: str, user_id: str, semester_id: str) -> tuple[str, str, str, str, int]:
    """The rating of one person in one period: deterministic from the world seed."""
    digest = hashlib.sha256(f"{world_seed}|{user_id}|{semester_id}".encode()).digest()
    draw = int.from_bytes(digest[:4], "big") % sum(r[4] for r in RATINGS)
    for rating in RATINGS:
        draw -= rating[4]
        if draw < 0:
            return rating
    return RATINGS[-1]


def _ids(user: Mapping[str, Any]) -> dict[str, str]:
    return {"open_id": str(user["open_id"]), "user_id": str(user["user_id"])}


def _reviewer(user: Mapping[str, Any], people: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The department's 销售主管 rates its people; a manager is rated by the first management user."""
    wanted = ("sales_manager",) if user["role"] != "sales_manager" else ("management",)
    same_dept = [
        p
        for p in people.values()
        if p["role"] in wanted and (p["department_id"] == user["department_id"] or wanted == ("management",))
    ]
    pool = same_dept or [p for p in people.values() if p["role"] == "management"] or [user]
    return sorted(pool, key=lambda p: str(p["user_id"]))[0]


@dataclass(frozen=True)
class ReviewQuery:
    """The filters of ``review_datas/query`` (body) and its ``user_id_type``."""

    start_ms: int
    end_ms: int
    semester_ids: frozenset[str]
    reviewees: frozenset[str]
    stage_types: frozenset[str]
    id_type: str


def _stage(
    stage_type: str, semester: Semester, user: Mapping[str, Any], reviewer: Mapping[str, Any], world_seed: str
) -> dict[str, Any]:
    option_id, label, _zh, score, _w = _rating(world_seed, str(user["user_id"]), semester.id)
    submitted = semester.end_ms + (10 if stage_type == "leader_review" else 20) * 86_400_000
    return {
        "stage_type": stage_type,
        "progress": 3,
        "data": [
            {
                "template_id": TEMPLATE_ID,
                "unit_id": UNIT_ID,
                "field_id": FIELD_ID,
                "reviewer_user_id": _ids(reviewer),
                "submit_time": str(submitted),
                "indicator_id": INDICATOR_ID,
                "option_id": option_id,
                "score": score,
                "text": label,
                "perf_coefficient_result": "",
                "richtext": "",
            }
        ],
    }


def review_datas(
    query: ReviewQuery, people: Mapping[str, Mapping[str, Any]], world_seed: str, now_ms: int
) -> dict[str, Any]:
    """The ``data`` of ``review_datas/query``: finished periods in the window, rated people, their stages."""
    chosen = [
        s
        for s in semesters()
        if s.end_ms < now_ms
        and s.start_ms <= query.end_ms
        and s.end_ms >= query.start_ms
        and (not query.semester_ids or s.id in query.semester_ids)
    ]
    rated = [
        u
        for u in people.values()
        if u["role"] in RATED_ROLES and (not query.reviewees or str(u.get(query.id_type)) in query.reviewees)
    ]
    stage_types = [t for t in REVIEW_STAGES if not query.stage_types or t in query.stage_types]
    datas = [
        {
            "user_id": _ids(u),
            "semester_id": s.id,
            "activity_id": s.activity_id,
            "stages": [_stage(t, s, u, _reviewer(u, people), world_seed) for t in stage_types],
        }
        for s in chosen
        for u in sorted(rated, key=lambda p: str(p["user_id"]))
    ]
    return {
        "semesters": [s.json() for s in chosen],
        "activities": [_activity_v1(s) for s in chosen],
        "indicators": [
            {
                "id": INDICATOR_ID,
                "name": {"zh-CN": "绩效等级", "en-US": "Rating"},
                "options": [
                    {"id": o, "name": {"zh-CN": zh, "en-US": lbl}, "label": lbl}
                    for o, lbl, zh, _s, _w in RATINGS
                ],
            }
        ],
        "templates": [
            {"id": TEMPLATE_ID, "name": {"zh-CN": "销售岗位绩效模板", "en-US": "Sales review"}, "stage": t}
            for t in stage_types
        ],
        "units": [{"id": UNIT_ID, "name": {"zh-CN": "综合评价", "en-US": "Overall"}}],
        "fields": [
            {
                "id": FIELD_ID,
                "name": {"zh-CN": "最终绩效等级", "en-US": "Final rating"},
                "indicator_id": INDICATOR_ID,
                "parent_field_id": "",
            }
        ],
        "datas": datas,
    }


def _activity_v1(s: Semester) -> dict[str, Any]:
    return {
        "id": s.activity_id,
        "name": {"zh-CN": f"{s.name_zh}绩效考核", "en-US": f"{s.year} {s.type} review"},
        "semester_id": s.id,
    }


def _activity_v2(s: Semester, now_ms: int) -> dict[str, Any]:
    """v2 writes names as ``zh_cn`` / ``en_us`` (the spec's ``activity`` schema), v1 as ``zh-CN``."""
    created = str(s.start_ms - 7 * 86_400_000)
    return {
        "id": s.activity_id,
        "name": {"zh_cn": f"{s.name_zh}绩效考核", "en_us": f"{s.year} {s.type} review"},
        "semester_id": s.id,
        "mode": "performance_review",
        "progress": "finished" if s.end_ms < now_ms else "enabled",
        "create_time": created,
        "modify_time": created,
        "create_user_id": "",
        "modify_user_id": "",
    }


def _ok(data: Any) -> Response:
    return Response(
        orjson.dumps({"code": 0, "msg": "success", "data": data}),
        status_code=200,
        media_type="application/json; charset=utf-8",
    )


def _invalid(detail: str, code: int = PARAM_INVALID) -> FeishuError:
    """A performance error code with the message the spec maps it to (default 1580102 ``param is invalid``)."""
    err = FeishuError(code)
    err.msg = f"{MESSAGES[code]}: {detail}"
    return err


def _ms(raw: Any, name: str, default: int) -> int:
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError as exc:
        raise _invalid(f"{name} must be a millisecond timestamp") from exc


def _strings(body: Mapping[str, Any], name: str) -> frozenset[str]:
    raw = body.get(name) or []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise _invalid(f"{name} must be an array of strings")
    return frozenset(raw)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise _invalid("the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    return body


def _filter_semesters(items: Iterable[Semester], params: Mapping[str, str]) -> list[Semester]:
    """``year``, ``type_group``, ``type``, and the period's start/end inside ``start_time``/``end_time``."""
    start = _ms(params.get("start_time"), "start_time", -(2**62))
    end = _ms(params.get("end_time"), "end_time", 2**62)
    year = params.get("year")
    return [
        s
        for s in items
        if s.start_ms >= start
        and s.end_ms <= end
        and (not year or str(s.year) == year)
        and (not params.get("type_group") or TYPE_GROUPS[s.type] == params["type_group"])
        and (not params.get("type") or s.type == params["type"])
    ]


@dataclass(frozen=True)
class RevieweeQuery:
    """``reviewees/query``: one period, optional users (of ``id_type``) and activities, one page."""

    semester: Semester
    user_ids: frozenset[str]
    activity_ids: frozenset[str]
    id_type: str
    offset: int
    page_size: int


def _page_size(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise _invalid("page_size must be a positive integer")
    return int(raw)


def _offset(token: str | None) -> int:
    """``page_token`` is opaque to clients; here ``p<offset>``."""
    if not token:
        return 0
    if not token.startswith("p") or not token[1:].isdigit():
        raise _invalid(token, PAGE_TOKEN_INVALID)
    return int(token[1:])


def reviewees(query: RevieweeQuery, people: Mapping[str, Mapping[str, Any]], base_url: str) -> dict[str, Any]:
    """The ``data`` of ``reviewees/query``: the period's rated people in user-id order, a page at a time."""
    s = query.semester
    if query.activity_ids and s.activity_id not in query.activity_ids:
        rated: list[Mapping[str, Any]] = []
    else:
        rated = sorted(
            (
                u
                for u in people.values()
                if u["role"] in RATED_ROLES
                and (not query.user_ids or str(u.get(query.id_type)) in query.user_ids)
            ),
            key=lambda u: str(u["user_id"]),
        )
    page = rated[query.offset : query.offset + query.page_size]
    out: dict[str, Any] = {
        "semester_id": s.id,
        "has_more": query.offset + query.page_size < len(rated),
        "reviewees": [
            {
                "reviewee_user_id": _ids(u),
                "activity_ids": [s.activity_id],
                "reviewprofile_url": f"{base_url}/performance/review/{s.id}/{u['open_id']}",
            }
            for u in page
        ],
    }
    if out["has_more"]:
        out["page_token"] = f"p{query.offset + query.page_size}"
    return out


def _id_type(request: Request) -> str:
    id_type = request.query_params.get("user_id_type") or "open_id"
    if id_type not in ("open_id", "user_id", "union_id"):
        raise _invalid("user_id_type must be open_id, user_id or union_id")
    return id_type


def _review_query(request: Request, body: Mapping[str, Any]) -> ReviewQuery:
    """The filters of ``review_datas/query``; a window that ends before it starts is refused."""
    query = ReviewQuery(
        start_ms=_ms(body.get("start_time"), "start_time", -(2**62)),
        end_ms=_ms(body.get("end_time"), "end_time", 2**62),
        semester_ids=_strings(body, "semester_id_list"),
        reviewees=_strings(body, "reviewee_user_id_list"),
        stage_types=_strings(body, "stage_types"),
        id_type=_id_type(request),
    )
    if query.start_ms > query.end_ms:
        raise _invalid("start_time must not be later than end_time")
    return query


def _reviewee_query(request: Request, body: Mapping[str, Any]) -> RevieweeQuery:
    """``reviewees/query`` asks for one period ("1 次只允许查询 1 个周期"), known or 1580105."""
    wanted = body.get("semester_id")
    if not isinstance(wanted, str) or not wanted:
        raise _invalid("semester_id is required (one period per call)")
    semester = next((s for s in semesters() if s.id == wanted), None)
    if semester is None:
        raise _invalid(wanted, INVALID_SEMESTER)
    return RevieweeQuery(
        semester=semester,
        user_ids=_strings(body, "user_ids"),
        activity_ids=_strings(body, "activity_ids"),
        id_type=_id_type(request),
        offset=_offset(request.query_params.get("page_token")),
        page_size=_page_size(request.query_params.get("page_size")),
    )


def _chosen_activities(body: Mapping[str, Any]) -> list[Semester]:
    """ "如果同时传了「semester_ids」，则优先以「activity_ids」进行查询" (performance.yaml)."""
    activity_ids, semester_ids = _strings(body, "activity_ids"), _strings(body, "semester_ids")
    if activity_ids:
        return [s for s in semesters() if s.activity_id in activity_ids]
    return [s for s in semesters() if not semester_ids or s.id in semester_ids]


def performance_router(state: SimState) -> APIRouter:
    """The four read endpoints, behind the tenant token and the OA simulator's frequency limits."""
    router = APIRouter()

    @router.get("/open-apis/performance/v1/semesters")
    async def list_semesters(request: Request) -> Response:
        state.authorize(request, "performance.semesters")
        return _ok({"items": [s.json() for s in _filter_semesters(semesters(), request.query_params)]})

    @router.post("/open-apis/performance/v2/activity/query")
    async def query_activities(request: Request) -> Response:
        state.authorize(request, "performance.activity")
        chosen = _chosen_activities(await _json_body(request))
        return _ok({"activities": [_activity_v2(s, state.now_ms()) for s in chosen]})

    @router.post("/open-apis/performance/v1/review_datas/query")
    async def query_review_datas(request: Request) -> Response:
        state.authorize(request, "performance.review_datas")
        query = _review_query(request, await _json_body(request))
        world_seed = state.store.get_meta("world_seed") or ""
        return _ok(review_datas(query, state.people, world_seed, state.now_ms()))

    @router.post("/open-apis/performance/v2/reviewees/query")
    async def query_reviewees(request: Request) -> Response:
        state.authorize(request, "performance.reviewees")
        query = _reviewee_query(request, await _json_body(request))
        return _ok(reviewees(query, state.people, str(request.base_url).rstrip("/")))

    return router
