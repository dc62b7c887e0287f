"""A customer's timeline from the staged records around it (:class:`bridge.journey.marts.Sources`): pure.

Each event is made from the record as the viewer's role sees it (:class:`bridge.journey.marts.Projection`):
an entity the role sees nothing of leaves no event (counted in ``Timeline.hidden``), a field it may not see
is not in the text, a masked one is masked. Text is Chinese; codes become the dictionary's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.journey.marts import (
    CAMPAIGN,
    EVENT,
    FEEDBACK,
    PARTICIPATION,
    SOURCE,
    Event,
    Projection,
    Sources,
    StageSpan,
    Timeline,
    parse_time,
)

SURVEY_LABELS = {
    "CSAT": "客户满意度（CSAT）",
    "NPS": "净推荐值（NPS）",
    "CES": "客户费力度（CES）",
    "CUSTOM": "自定义问卷",
}
PARTICIPATION_LABELS = {
    "registered": "报名",
    "attended": "参加",
    "cancelled": "取消报名",
    "no_show": "报名未到场",
}
FORM_EVENTS = {  # OA form → (kind, the business date field, title)
    "project_initiation": ("approval", "created_at", "提交立项申请"),
    "expense_claim": ("expense", "expense_date", "费用报销"),
    "travel_request": ("trip", "start_date", "差旅出发"),
    "visit_plan": ("visit", "visit_date", "客户拜访"),
}
DOC_CLASS_LABELS = {"contract": "合同", "invoice": "发票", "other": "其他附件"}


@dataclass(frozen=True)
class Labels:
    stages: Mapping[str, str]
    approval: Mapping[str, str]
    sources: Mapping[str, str]

    @classmethod
    def of(cls, d: Dictionary) -> Labels:
        maps = d.value_maps
        source_map = maps.get("original_source")
        return cls(
            stages={v.canonical: v.label for v in maps["deal_stage"].values},
            approval={v.canonical: v.label for v in maps["approval_status"].values},
            sources={v.canonical: v.label for v in source_map.values} if source_map else {},
        )

    def stage(self, code: Any) -> str:
        return self.stages.get(str(code), str(code)) if code else "（无阶段）"


def _text(parts: Sequence[tuple[str, Any]]) -> str:
    """「标签：值」 pairs of the values present, joined."""
    return "；".join(f"{label}：{value}" for label, value in parts if value not in (None, ""))


@dataclass
class _Builder:
    sources: Sources
    view: Projection
    labels: Labels
    spans: Mapping[str, Sequence[StageSpan]]
    now: datetime
    timeline: Timeline

    def shown(self, entity: str, snap: store.Snapshot) -> dict[str, Any] | None:
        record = self.view.shown(entity, snap.payload)
        if record is None:
            self.timeline.hidden[entity] = self.timeline.hidden.get(entity, 0) + 1
        return record

    def add(
        self, at: datetime | None, kind: str, title: str, detail: str, system: str, days: float | None = None
    ) -> Event | None:
        if at is None:
            return None
        event = Event(at, kind, title, detail, system, days)
        self.timeline.events.append(event)
        return event

    def contacts(self) -> None:
        for snap in self.sources.contacts:
            shown = self.shown("contact", snap)
            if shown is not None:
                name = shown.get("full_name") or "联系人"
                self.add(
                    snap.first_seen_at,
                    "contact",
                    "新增联系人",
                    _text([("姓名", name), ("职务", shown.get("job_title"))]),
                    "crm",
                )

    def touches(self) -> list[Event]:
        """Event participations and the contacts' original source; the earliest is the first touch."""
        made: list[Event | None] = []
        for snap in self.sources.participations:
            shown = self.shown(PARTICIPATION, snap)
            if shown is None:
                continue
            event_snap = self.sources.events.get(str(snap.payload.get("event_id")))
            event = (self.view.shown(EVENT, event_snap.payload) if event_snap else None) or {}
            campaign = self._campaign_name(event_snap.payload.get("campaign_id") if event_snap else None)
            state = PARTICIPATION_LABELS.get(str(shown.get("state")), "参与")
            at = parse_time(shown.get("occurred_at")) or parse_time(event.get("start_at"))
            detail = _text([("活动", event.get("name")), ("营销活动", campaign)])
            made.append(self.add(at, "event", f"市场活动{state}", detail, "crm"))
        for contact in self.sources.contacts:
            origin = self.sources.contact_sources.get(contact.source_id)
            shown = self.shown(SOURCE, origin) if origin is not None else None
            if not shown or not (shown.get("source") or shown.get("first_touch_campaign_id")):
                continue
            source = shown.get("source")
            detail = _text(
                [
                    ("来源", self.labels.sources.get(str(source), source)),
                    ("营销活动", self._campaign_name(shown.get("first_touch_campaign_id"))),
                ]
            )
            made.append(self.add(contact.first_seen_at, "first_touch", "首次接触来源", detail, "crm"))
        return [e for e in made if e is not None]

    def _campaign_name(self, campaign_id: Any) -> str | None:
        snap = self.sources.campaigns.get(str(campaign_id)) if campaign_id else None
        shown = self.view.shown(CAMPAIGN, snap.payload) if snap else None
        return str(shown.get("name")) if shown and shown.get("name") else None

    def deals(self) -> None:
        for snap in self.sources.deals:
            shown = self.shown("deal", snap)
            if shown is None:
                continue
            name = shown.get("deal_name") or shown.get("project_no") or "商机"
            self.add(parse_time(shown.get("created_at")), "deal", "新建商机", _text([("商机", name)]), "crm")
            for span in self.spans.get(snap.source_id, ()) if "stage" in shown else ():
                self.add(
                    span.start,
                    "stage",
                    f"进入阶段：{self.labels.stage(span.stage)}",
                    _text(
                        [("商机", name), ("依据", "首次同步时所见" if span.basis == "first_seen" else None)]
                    ),
                    "crm",
                    days=round(span.days(self.now), 1) if span.end is not None else None,
                )
            if shown.get("stage") in ("won", "delivered"):
                self.add(
                    parse_time(shown.get("close_date")), "won", "赢单签约", _text([("商机", name)]), "crm"
                )

    def approvals(self, form_labels: Mapping[str, str]) -> None:
        for form, snaps in self.sources.approvals.items():
            kind, when, title = FORM_EVENTS[form]
            for snap in snaps:
                shown = self.shown(form, snap)
                if shown is None:
                    continue
                status = self.labels.approval.get(
                    str(shown.get("approval_status")), shown.get("approval_status")
                )
                detail = _text(
                    [
                        ("表单", form_labels.get(form, form)),
                        ("状态", status),
                        ("项目编号", shown.get("project_no")),
                        ("目的地", shown.get("destination")),
                        ("事由", shown.get("purpose")),
                    ]
                )
                self.add(
                    parse_time(shown.get(when)) or parse_time(shown.get("created_at")),
                    kind,
                    title,
                    detail,
                    "oa",
                )
                if form == "project_initiation" and shown.get("decided_at"):
                    self.add(
                        parse_time(shown.get("decided_at")),
                        "approval",
                        f"立项审批：{status}",
                        _text([("项目编号", shown.get("project_no"))]),
                        "oa",
                    )

    def answers(self) -> None:
        for snap in self.sources.answers:
            shown = self.shown(FEEDBACK, snap)
            if shown is None:
                continue
            survey = SURVEY_LABELS.get(str(shown.get("survey_type")), "满意度调查")
            self.add(
                parse_time(shown.get("submitted_at")),
                "survey",
                f"满意度反馈：{survey}",
                _text([("评分", shown.get("value")), ("问卷", shown.get("survey_name"))]),
                "crm",
            )

    def documents(self, may_see: Callable[[str], bool]) -> None:
        for doc in self.sources.documents:
            cls = str(doc.get("doc_class"))
            if not may_see(cls):
                self.timeline.hidden["document"] = self.timeline.hidden.get("document", 0) + 1
                continue
            self.add(
                doc.get("created_at"),
                "document",
                f"附件：{DOC_CLASS_LABELS.get(cls, cls)}",
                _text([("类型", str(doc.get("kind") or "").upper())]),
                "hub",
            )


def build_timeline(
    sources: Sources,
    view: Projection,
    labels: Labels,
    spans: Mapping[str, Sequence[StageSpan]],
    *,
    now: datetime,
    may_see_document: Callable[[str], bool],
) -> Timeline:
    """The customer's events in time order, as ``view`` may see them; the first touch picked out."""
    name = (view.shown("company", sources.company.payload) or {}).get("name")
    timeline = Timeline(sources.company.source_id, str(name) if name else None)
    builder = _Builder(sources, view, labels, spans, now, timeline)
    builder.contacts()
    touches = builder.touches()
    builder.deals()
    builder.approvals({e: d.label for e, d in view.policy.dictionary.entities.items()})
    builder.answers()
    builder.documents(may_see_document)
    timeline.events.sort(key=lambda e: (e.at, e.kind))
    timeline.first_touch = min(touches, key=lambda e: e.at) if touches else None
    return timeline
