"""The journey entities' own rules beyond the dictionary's field rules (pure: record in, record and problems out).

* ``feedback_submission``: the rating lies on its survey type's scale (``journey.rating_scales``); an NPS
  answer without a bucket gets one from its rating (``journey.nps_promoter_from`` / ``nps_passive_from``);
  a bucket on a non-NPS answer, or one that contradicts the rating, is an ``invalid_format`` problem.
* ``performance_review``: the score, when given, lies between 0 and 100.

The messages are Chinese and say what is wrong and who fixes it, like the dictionary's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.dictionary import Dictionary, Problem
from bridge.settings_model import JourneySection

INVALID_FORMAT = "invalid_format"
SCORE_RANGE = (0, 100)


def nps_group_of(value: int, cfg: JourneySection) -> str:
    """The NPS bucket of a 0–10 rating."""
    if value >= cfg.nps_promoter_from:
        return "promoter"
    return "passive" if value >= cfg.nps_passive_from else "detractor"


def _problem(d: Dictionary, entity: str, field: str, message: str, value: object) -> Problem:
    f = d.entity(entity).fields[field]
    owner = d.departments.get(f.owner)
    who = owner.label if owner else f.owner
    return Problem(INVALID_FORMAT, entity, field, f"{message}请{who}核对后改正。", f.owner, str(value)[:200])


def _feedback(d: Dictionary, cfg: JourneySection, record: dict[str, Any]) -> list[Problem]:
    kind, value, group = record.get("survey_type"), record.get("value"), record.get("nps_group")
    rid = record.get("response_id")
    problems: list[Problem] = []
    scale = cfg.rating_scales.get(str(kind)) if kind else None
    if scale is not None and isinstance(value, int) and not scale[0] <= value <= scale[1]:
        problems.append(_problem(
            d, "feedback_submission", "value",
            f"满意度调查答卷「{rid}」的评分 {value} 不在{kind}问卷的评分范围 {scale[0]}–{scale[1]} 内。", value,
        ))
        return problems
    if kind == "NPS" and isinstance(value, int):
        expected = nps_group_of(value, cfg)
        if group is None:
            record["nps_group"] = expected
        elif group != expected:
            problems.append(_problem(
                d, "feedback_submission", "nps_group",
                f"满意度调查答卷「{rid}」的 NPS 分组与评分 {value} 不符（应为{d.label('nps_group', expected)}）。",
                group,
            ))
    elif kind is not None and kind != "NPS" and group is not None:
        problems.append(_problem(
            d, "feedback_submission", "nps_group",
            f"满意度调查答卷「{rid}」不是 NPS 问卷（{kind}），不应有 NPS 分组。", group,
        ))
    return problems


def _review(d: Dictionary, record: Mapping[str, Any]) -> list[Problem]:
    score = record.get("score")
    if isinstance(score, int) and not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
        return [_problem(
            d, "performance_review", "score",
            f"绩效记录「{record.get('review_id')}」的分数 {score} 不在 {SCORE_RANGE[0]}–{SCORE_RANGE[1]} 之间。",
            score,
        )]
    return []


def check(
    d: Dictionary, cfg: JourneySection, entity: str, record: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Problem]]:
    """A copy of the canonical ``record`` (an NPS bucket filled in) and the problems of the entity's rules."""
    out = dict(record)
    if entity == "feedback_submission":
        return out, _feedback(d, cfg, out)
    if entity == "performance_review":
        return out, _review(d, out)
    return out, []
