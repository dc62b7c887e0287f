"""People × satisfaction: per sales owner and review period, the rating beside their customers' CSAT / NPS,
win rate, cycle time and the number of answers; the correlation over the team; who may see which row.

Pure functions over plain rows (the hub reads are in :mod:`bridge.journey.marts`). Definitions:

* an answer belongs to the owner of the answering contact's company, and to the period whose dates hold its
  ``submitted_at``; CSAT = mean of the CSAT answers' values; NPS = % promoters − % detractors of the NPS
  answers (0–10: 9–10 promoters, 0–6 detractors, when the source gives no group);
* win rate = won ÷ (won + lost) of the owner's deals whose close date falls in the period; cycle time =
  median days from a won deal's creation to its close date;
* no CSAT / NPS figure from fewer answers than ``min_responses``, and such an owner is no point of the
  correlation (Spearman or Pearson with a Fisher-z interval, :mod:`bridge.journey.stats`);
* PIPL: a person's row is shown only to the roles that may see every person (人力资源部 …) and to that person's
  management chain; everyone else sees groups of at least ``min_group_size`` people (smaller groups are merged,
  then suppressed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from statistics import mean, median

from bridge.journey.stats import Correlation, Method, correlate
from bridge.journey.view_settings import chain_above

WON = ("won", "delivered")
LOST = ("lost",)
SMALL_GROUP = "其他"


@dataclass(frozen=True)
class Period:
    id: str
    name: str
    start: datetime | None
    end: datetime | None

    def holds(self, at: datetime | None) -> bool:
        return (
            at is not None
            and self.start is not None
            and self.end is not None
            and self.start <= at <= self.end
        )

    def holds_day(self, day: date | None) -> bool:
        if day is None or self.start is None or self.end is None:
            return False
        return self.start.date() <= day <= self.end.date()


@dataclass(frozen=True)
class Review:
    """A person's result of a period; ``owner_id`` is the CRM owner the OA user is linked to."""

    owner_id: str
    period_id: str
    rating: str | None
    score: float | None


@dataclass(frozen=True)
class Answer:
    owner_id: str
    survey_type: str  # CSAT | NPS | CES | CUSTOM
    value: float | None
    submitted_at: datetime | None
    nps_group: str | None = None


@dataclass(frozen=True)
class DealFact:
    owner_id: str
    stage: str | None
    created: date | None
    closed: date | None


@dataclass(frozen=True)
class OwnerPeriod:
    """One row of the people × satisfaction table."""

    owner_id: str
    period_id: str
    rating: str | None
    rating_points: float | None
    responses: int  # CSAT + NPS answers in the period
    csat_responses: int
    nps_responses: int
    csat: float | None  # None under min_responses
    nps: float | None
    won: int
    closed: int
    win_rate: float | None
    cycle_days: float | None


@dataclass(frozen=True)
class Rules:
    min_responses: int = 5
    min_group_size: int = 5
    method: Method = "spearman"
    level: float = 0.95
    rating_points: Mapping[str, float] = field(
        default_factory=lambda: {"S": 5, "A": 4, "B": 3, "C": 2, "D": 1}
    )


def points_of(review: Review, scale: Mapping[str, float]) -> float | None:
    """The review as a number: its level on the scale (``journey_views.rating_points``), else its score."""
    if review.rating and review.rating in scale:
        return float(scale[review.rating])
    return float(review.score) if review.score is not None else None


def nps_bucket(answer: Answer) -> str | None:
    """promoter | passive | detractor: the source's group, else from the 0–10 value."""
    if answer.nps_group in ("promoter", "passive", "detractor"):
        return answer.nps_group
    if answer.value is None:
        return None
    return "promoter" if answer.value >= 9 else "passive" if answer.value >= 7 else "detractor"


def nps_score(answers: Sequence[Answer]) -> float | None:
    """% promoters − % detractors (−100 … 100) of NPS answers with a group or a value."""
    buckets = [b for b in (nps_bucket(a) for a in answers) if b is not None]
    if not buckets:
        return None
    return 100.0 * (buckets.count("promoter") - buckets.count("detractor")) / len(buckets)


def _deal_figures(deals: Sequence[DealFact], period: Period) -> tuple[int, int, float | None]:
    """(won, closed, median cycle days) of deals closed within the period."""
    closed = [d for d in deals if d.stage in WON + LOST and period.holds_day(d.closed)]
    won = [d for d in closed if d.stage in WON]
    cycles = [(d.closed - d.created).days for d in won if d.closed is not None and d.created is not None]
    return len(won), len(closed), (float(median(cycles)) if cycles else None)


def owner_periods(
    reviews: Iterable[Review],
    periods: Mapping[str, Period],
    answers: Sequence[Answer],
    deals: Sequence[DealFact],
    rules: Rules,
) -> list[OwnerPeriod]:
    """One row per reviewed owner and period (the latest result of a person and period wins)."""
    answers_by_owner: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        answers_by_owner[a.owner_id].append(a)
    deals_by_owner: dict[str, list[DealFact]] = defaultdict(list)
    for d in deals:
        deals_by_owner[d.owner_id].append(d)
    chosen = {(r.owner_id, r.period_id): r for r in reviews if r.period_id in periods}
    rows = []
    for (owner, period_id), review in sorted(chosen.items()):
        period = periods[period_id]
        mine = [a for a in answers_by_owner.get(owner, []) if period.holds(a.submitted_at)]
        csat = [a for a in mine if a.survey_type == "CSAT" and a.value is not None]
        nps = [a for a in mine if a.survey_type == "NPS"]
        won, closed, cycle = _deal_figures(deals_by_owner.get(owner, []), period)
        rows.append(
            OwnerPeriod(
                owner_id=owner,
                period_id=period_id,
                rating=review.rating,
                rating_points=points_of(review, rules.rating_points),
                responses=len(csat) + len(nps),
                csat_responses=len(csat),
                nps_responses=len(nps),
                csat=mean(float(a.value) for a in csat if a.value is not None)
                if len(csat) >= rules.min_responses
                else None,
                nps=nps_score(nps) if len(nps) >= rules.min_responses else None,
                won=won,
                closed=closed,
                win_rate=(won / closed) if closed else None,
                cycle_days=cycle,
            )
        )
    return rows


@dataclass(frozen=True)
class TeamCorrelation:
    """Rating against one satisfaction measure over the owners of one period who have enough answers."""

    period_id: str
    measure: str  # csat | nps
    people: int  # owners with a rating and enough answers (the pairs)
    responses: int  # answers behind those pairs
    excluded: int  # reviewed owners left out for too few answers
    result: Correlation | None


def team_correlations(rows: Sequence[OwnerPeriod], rules: Rules) -> list[TeamCorrelation]:
    """Per period, rating × CSAT and rating × NPS (None below 2 usable owners or with a constant side)."""
    out = []
    for period_id in sorted({r.period_id for r in rows}):
        mine = [r for r in rows if r.period_id == period_id and r.rating_points is not None]
        for measure, count in (("csat", "csat_responses"), ("nps", "nps_responses")):
            usable = [r for r in mine if getattr(r, measure) is not None]
            result = (
                correlate(
                    [float(r.rating_points or 0) for r in usable],
                    [float(getattr(r, measure)) for r in usable],
                    method=rules.method,
                    level=rules.level,
                )
                if len(usable) >= 2
                else None
            )
            out.append(
                TeamCorrelation(
                    period_id,
                    measure,
                    len(usable),
                    sum(getattr(r, count) for r in usable),
                    len(mine) - len(usable),
                    result,
                )
            )
    return out


# ---------------------------------------------------------------- who sees what (PIPL)
@dataclass(frozen=True)
class Viewer:
    """The person looking: their policy role and, when known, the CRM owner id they are."""

    role: str
    owner_id: str | None


def may_see_person(
    viewer: Viewer, person: str, all_roles: Iterable[str], managers: Mapping[str, str]
) -> bool:
    """A role that sees every person, or a manager above ``person`` in the chain (not the person alone)."""
    if viewer.role in set(all_roles):
        return True
    return viewer.owner_id is not None and viewer.owner_id in chain_above(person, managers)


@dataclass(frozen=True)
class GroupFigure:
    """An aggregate over ``people`` owners of one period (a rating level, the merged rest, or the team)."""

    period_id: str
    group: str
    people: int
    responses: int
    csat: float | None
    nps: float | None
    win_rate: float | None
    cycle_days: float | None


def _group(period_id: str, name: str, members: Sequence[OwnerPeriod], rules: Rules) -> GroupFigure:
    csat_n = sum(r.csat_responses for r in members)
    nps_n = sum(r.nps_responses for r in members)
    csat = [r.csat for r in members if r.csat is not None]
    nps = [r.nps for r in members if r.nps is not None]
    won, closed = sum(r.won for r in members), sum(r.closed for r in members)
    cycles = [r.cycle_days for r in members if r.cycle_days is not None]
    return GroupFigure(
        period_id,
        name,
        len(members),
        csat_n + nps_n,
        mean(csat) if csat and csat_n >= rules.min_responses else None,
        mean(nps) if nps and nps_n >= rules.min_responses else None,
        (won / closed) if closed else None,
        float(median(cycles)) if cycles else None,
    )


def group_figures(rows: Sequence[OwnerPeriod], rules: Rules) -> list[GroupFigure]:
    """Per period: each rating level with ≥ min_group_size people, the smaller levels merged (shown only if
    the merge reaches the minimum), and the whole team (if it does). Nobody's row can be told apart."""
    out: list[GroupFigure] = []
    for period_id in sorted({r.period_id for r in rows}):
        mine = [r for r in rows if r.period_id == period_id]
        by_level: dict[str, list[OwnerPeriod]] = defaultdict(list)
        for r in mine:
            by_level[r.rating or "—"].append(r)
        rest: list[OwnerPeriod] = []
        for level in sorted(by_level):
            members = by_level[level]
            if len(members) >= rules.min_group_size:
                out.append(_group(period_id, f"绩效 {level}", members, rules))
            else:
                rest += members
        if len(rest) >= rules.min_group_size:
            out.append(
                _group(period_id, f"{SMALL_GROUP}（各等级不足 {rules.min_group_size} 人，合并）", rest, rules)
            )
        if len(mine) >= rules.min_group_size:
            out.append(_group(period_id, "全体", mine, rules))
    return out


def suppressed_people(rows: Sequence[OwnerPeriod], rules: Rules) -> dict[str, int]:
    """Per period, how many people are in no shown group (their level and the merge both too small)."""
    shown: dict[str, int] = defaultdict(int)
    for g in group_figures(rows, rules):
        if g.group != "全体":
            shown[g.period_id] += g.people
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        totals[r.period_id] += 1
    return {p: totals[p] - shown.get(p, 0) for p in totals}
