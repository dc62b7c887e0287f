"""People's review results from Feishu 绩效 (Performance): review periods and the rating of each person.

Vendor knowledge kept here (docs/sim_oa.md, docs/journey.md): ``GET /open-apis/performance/v1/semesters``
(the periods, no paging), ``POST /open-apis/performance/v2/reviewees/query`` (the people reviewed in one
period, the only paged endpoint: ``page_size``/``page_token``/``has_more``) and ``POST
/open-apis/performance/v1/review_datas/query`` (the results of a list of people in a period: stages
``leader_review`` and ``communication_and_open_result``, the chosen option of each indicator). The
endpoints' own error codes: 1580102 (invalid parameter), 1580105 (unknown period, raised here as
NotFoundError), 1580107 (a page token the server did not hand out).

``OaPerformance`` is a mixin of :class:`bridge.hooks.oa.OaHook`, returning frozen dataclasses in business
terms; the pure decoders (``*_of``) are tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.hooks._reading import PagedCalls, decimal, epoch_ms, part, text
from bridge.hooks.errors import BadRequestError, BadResponseError, NotFoundError

SEMESTERS = "/open-apis/performance/v1/semesters"
REVIEWEES = "/open-apis/performance/v2/reviewees/query"
REVIEW_DATAS = "/open-apis/performance/v1/review_datas/query"
UNKNOWN_SEMESTER = "1580105"
REVIEWEE_PAGE_SIZE = 50  # the spec gives no maximum; one review_datas call per page of people
# The stage whose rating counts: the result opened to the person, else the manager's review.
STAGE_ORDER = ("communication_and_open_result", "leader_review")


@dataclass(frozen=True)
class ReviewPeriod:
    """A review period (评估周期): its year, half (``H1``/``H2``) or other type, name, bounds in epoch ms."""

    id: str
    year: int | None
    period_type: str | None
    name: str
    start_ms: int | None
    end_ms: int | None


@dataclass(frozen=True)
class ReviewResult:
    """One person's rating in one period: the level (``S`` … ``D``), its name, its score, from which stage."""

    user_id: str
    period_id: str
    activity_id: str | None
    stage: str  # communication_and_open_result | leader_review
    rating: str | None
    rating_name: str | None
    score: Decimal | None
    reviewer_user_id: str | None
    submitted_ms: int | None


# ------------------------------------------------------------------ pure decoding
def _zh(name: object) -> str | None:
    """The Chinese name of a v1 ``{zh-CN, en-US}`` or v2 ``{zh_cn, en_us}`` name."""
    if not isinstance(name, dict):
        return text(name)
    return text(name.get("zh-CN")) or text(name.get("zh_cn"))


def period_of(item: Mapping[str, Any]) -> ReviewPeriod:
    year = item.get("year")
    return ReviewPeriod(
        id=str(item.get("id")),
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        period_type=text(item.get("type")),
        name=_zh(item.get("name")) or "",
        start_ms=epoch_ms(item.get("start_time")),
        end_ms=epoch_ms(item.get("end_time")),
    )


def option_names(data: Mapping[str, Any]) -> dict[str, str]:
    """``{option id: Chinese name}`` of every indicator's options in a ``review_datas`` answer."""
    out: dict[str, str] = {}
    for indicator in data.get("indicators") or []:
        for option in (indicator.get("options") or []) if isinstance(indicator, dict) else []:
            name = _zh(option.get("name")) if isinstance(option, dict) else None
            if name:
                out[str(option.get("id"))] = name
    return out


def _final_stage(stages: object) -> tuple[str, Mapping[str, Any]] | None:
    """The stage that counts and its first data item (None when no stage holds a rating)."""
    by_type = {
        s.get("stage_type"): s
        for s in (stages if isinstance(stages, list) else [])
        if isinstance(s, dict) and isinstance(s.get("data"), list) and s["data"]
    }
    for stage_type in STAGE_ORDER:
        stage = by_type.get(stage_type)
        if stage is not None and isinstance(stage["data"][0], dict):
            return stage_type, stage["data"][0]
    return None


def review_result_of(item: Mapping[str, Any], names: Mapping[str, str]) -> ReviewResult | None:
    """One ``datas`` item as a result (None without a rated stage); the person by ``user_id``."""
    final = _final_stage(item.get("stages"))
    if final is None:
        return None
    stage, entry = final
    user, reviewer = part(item, "user_id"), part(entry, "reviewer_user_id")
    return ReviewResult(
        user_id=str(user.get("user_id") or ""),
        period_id=str(item.get("semester_id") or ""),
        activity_id=text(item.get("activity_id")),
        stage=stage,
        rating=text(entry.get("text")),
        rating_name=names.get(str(entry.get("option_id"))),
        score=decimal(entry.get("score")),
        reviewer_user_id=text(reviewer.get("user_id")),
        submitted_ms=epoch_ms(entry.get("submit_time")),
    )


def reviewee_id_of(item: object) -> str | None:
    """The ``user_id`` of a ``reviewees`` item."""
    ids = item.get("reviewee_user_id") if isinstance(item, dict) else None
    return text(ids.get("user_id")) if isinstance(ids, dict) else None


# ------------------------------------------------------------------ the mixin
def _data(hook: PagedCalls, method: str, template: str, **kw: Any) -> Mapping[str, Any]:
    """The ``data`` of a Feishu answer; an unknown period is NotFoundError, not a bad request."""
    try:
        body = hook.call(method, template, **kw).body
    except BadRequestError as exc:
        if exc.code != UNKNOWN_SEMESTER:
            raise
        raise NotFoundError(
            exc.message, system="oa", status=exc.status, code=exc.code, method=exc.method, path=exc.path
        ) from exc
    data = body.get("data") if isinstance(body, dict) else None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadResponseError(
            "data of the answer is not an object", system="oa", method=method, path=template
        )
    return data


class OaPerformance:
    """Review periods and review results: OaHook's performance reads (read-only)."""

    def performance_semesters(self: PagedCalls) -> list[ReviewPeriod]:
        """Every review period the app may read (one call: the endpoint does not page)."""
        data = _data(self, "GET", SEMESTERS, params={"user_id_type": "user_id"})
        return [period_of(i) for i in data.get("items") or [] if isinstance(i, dict)]

    def iter_review_results(
        self: PagedCalls,
        semester_id: str,
        user_ids: Sequence[str] | None = None,
        page_size: int = REVIEWEE_PAGE_SIZE,
    ) -> Iterator[list[ReviewResult]]:
        """Pages of the results of one period: the people reviewed (paged, optionally only ``user_ids``),
        then one result query per page of people. People without a result yet are left out."""

        def fetch(token: str | None) -> tuple[list[str], str | None]:
            params: dict[str, Any] = {"user_id_type": "user_id", "page_size": page_size}
            if token:
                params["page_token"] = token
            body: dict[str, Any] = {"semester_id": semester_id}
            if user_ids:
                body["user_ids"] = list(user_ids)
            data = _data(self, "POST", REVIEWEES, params=params, json=body)
            people = [reviewee_id_of(i) for i in data.get("reviewees") or []]
            nxt = text(data.get("page_token")) if data.get("has_more") is True else None
            return [p for p in people if p], nxt

        for people in self._cursor_pages(fetch, lambda p: p, f"oa reviewees {semester_id}"):
            data = _data(
                self,
                "POST",
                REVIEW_DATAS,
                params={"user_id_type": "user_id"},
                json={"semester_id_list": [semester_id], "reviewee_user_id_list": people},
            )
            names = option_names(data)
            results = [review_result_of(i, names) for i in data.get("datas") or [] if isinstance(i, dict)]
            found = [r for r in results if r is not None]
            if found:
                yield found
