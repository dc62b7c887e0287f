"""The demo portal's customer journey: campaigns, marketing events, participations, original sources
and satisfaction surveys — deterministic from the world (same seed and sizes, same rows).

Five campaigns of a Chinese B2B software vendor (发布会, 行业峰会, 百度推广, 公众号, 老客户转介绍),
four marketing events of the first two, and for every contact an original source drawn once: a
contact whose source is an event (``OFFLINE`` / ``INTEGRATION``) registered for that event, and its
first-touch campaign is the event's campaign. About a third of the contacts answered a survey
(NPS 0–10, CSAT 1–5, CES 1–7), a few twice; submissions are ``feedback_submissions`` objects
associated to their contact. Marketing data live in their own tables (``SCHEMA``), emptied by a
reset and refilled by every seed.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from sandbox.common.world import CONTACT_ID_BASE, SeedObject, World
from sandbox.crm.journey_model import FEEDBACK_ID_BASE
from sandbox.crm.model import iso_ms

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mkt_campaign (guid TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, "
    "updated_ms INTEGER NOT NULL, props BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS mkt_asset (guid TEXT NOT NULL, asset_type TEXT NOT NULL, asset_id TEXT NOT NULL, "
    "name TEXT NOT NULL, PRIMARY KEY (guid, asset_type, asset_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS mkt_event (object_id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, "
    "external_id TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, body BLOB NOT NULL, "
    "UNIQUE (account_id, external_id))",
    "CREATE TABLE IF NOT EXISTS mkt_participation (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, "
    "contact_id INTEGER NOT NULL, state TEXT NOT NULL, occurred_ms INTEGER NOT NULL, "
    "UNIQUE (event_id, contact_id))",
)
TABLES = ("mkt_campaign", "mkt_asset", "mkt_event", "mkt_participation")
EVENT_ACCOUNT = "bridge-events-app"  # the external event application's account id
FIRST_EVENT_ID = 620_000_001
DAY = 86_400_000


@dataclass(frozen=True)
class Campaign:
    index: int
    name: str
    notes: str
    audience: str
    budget: int
    start_day: int  # days before the world's now
    length_days: int


@dataclass(frozen=True)
class Event:
    index: int
    campaign: int
    external_id: str
    name: str
    event_type: str
    organizer: str
    start_day: int
    hours: int


CAMPAIGNS = (
    Campaign(
        0,
        "2026 春季新品发布会",
        "云 ERP 新版本发布，邀请重点客户与渠道伙伴",
        "华东、华北重点客户",
        180_000,
        260,
        45,
    ),
    Campaign(
        1, "华东区制造业数字化峰会", "与行业协会联办，面向制造业 CIO", "制造业信息化负责人", 120_000, 200, 30
    ),
    Campaign(2, "百度搜索推广·ERP 关键词", "ERP、进销存、财务软件关键词投放", "中小企业主", 60_000, 330, 300),
    Campaign(3, "微信公众号内容营销", "行业案例与白皮书下载", "企业 IT 与财务人员", 30_000, 360, 330),
    Campaign(4, "老客户转介绍计划", "成交客户推荐新客户，双方各得服务时长", "已成交客户", 20_000, 300, 270),
)
EVENTS = (
    Event(0, 0, "evt-2026-spring-sh", "2026 春季新品发布会（上海站）", "CONFERENCE", "市场部", 240, 4),
    Event(1, 0, "evt-2026-spring-bj", "2026 春季新品发布会（北京站）", "CONFERENCE", "市场部", 233, 4),
    Event(2, 1, "evt-2026-mfg-summit", "华东区制造业数字化峰会", "SUMMIT", "市场部 · 华东销售部", 185, 8),
    Event(3, 0, "evt-2026-erp-webinar", "ERP 选型线上研讨会", "WEBINAR", "市场部", 150, 2),
)
# (source, drill-down 1, drill-down 2 or "" / "{event}", campaign index or None, weight)
SOURCE_PLAN: tuple[tuple[str, str, str, int | None, int], ...] = (
    ("OFFLINE", "INTEGRATION", "{event}", None, 25),
    ("PAID_SEARCH", "baidu", "ERP 系统", 2, 15),
    ("SOCIAL_MEDIA", "WeChat", "公众号文章", 3, 12),
    ("REFERRALS", "www.36kr.com", "", None, 5),
    ("OFFLINE", "IMPORT", "展会名片导入", None, 13),
    ("OTHER_CAMPAIGNS", "referral-program", "老客户推荐", 4, 10),
    ("ORGANIC_SEARCH", "baidu", "", None, 10),
    ("DIRECT_TRAFFIC", "www.example-erp.cn/pricing", "", None, 5),
    ("OFFLINE", "CRM_UI", "销售录入", None, 5),
)
SURVEYS = (  # (survey id, type, name, lowest, highest, weight)
    (11, "NPS", "年度客户净推荐值调查", 0, 10, 4),
    (12, "CSAT", "实施交付满意度回访", 1, 5, 5),
    (13, "CES", "服务工单处理费力度调查", 1, 7, 2),
)
COMMENTS = {
    "POSITIVE": (
        "实施顾问很专业，上线比预期顺利",
        "售后响应及时，问题当天解决",
        "系统稳定，财务月结快了很多",
    ),
    "NEUTRAL": ("整体还可以，报表功能需要加强", "培训资料偏少", ""),
    "NEGATIVE": ("上线延期两周，沟通不够", "二次开发报价偏高", "工单处理太慢，反复催促"),
}


def _rng(seed: int, kind: str, index: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{kind}|{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def campaign_guid(seed: int, index: int) -> str:
    """A campaign's UUID (HubSpot campaigns are addressed by GUID), stable for the seed."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{seed}|campaign|{index}".encode()).digest()[:16], version=4))


def event_object_id(index: int) -> int:
    return FIRST_EVENT_ID + index


@dataclass(frozen=True)
class Source:
    """A contact's original source and, when it came from an event, that event."""

    properties: dict[str, str]
    event: Event | None


def contact_source(seed: int, contact_index: int) -> Source:
    """The original-source properties of contact ``contact_index`` (HubSpot computes them; read-only)."""
    rng = _rng(seed, "source", contact_index)
    source, data_1, data_2, campaign, _w = rng.choices(SOURCE_PLAN, weights=[p[4] for p in SOURCE_PLAN])[0]
    event = EVENTS[rng.randrange(len(EVENTS))] if data_2 == "{event}" else None
    if event is not None:
        data_2, campaign = event.name, event.campaign
    props = {
        "hs_analytics_source": source,
        "hs_analytics_source_data_1": data_1,
        "hs_analytics_source_data_2": data_2,
    }
    if campaign is not None:
        props["hs_analytics_first_touch_converting_campaign"] = campaign_guid(seed, campaign)
    return Source(props, event)


def _survey_answer(rng: random.Random) -> tuple[tuple[int, str, str, int, int, int], int, str, str]:
    """(survey, value, response group, sentiment): NPS groups as HubSpot names them."""
    survey = rng.choices(SURVEYS, weights=[s[5] for s in SURVEYS])[0]
    _sid, kind, _name, low, high, _w = survey
    value = min(high, max(low, round(rng.triangular(low, high, high - (high - low) * 0.2))))
    share = (value - low) / (high - low)
    sentiment = "POSITIVE" if share >= 0.75 else "NEUTRAL" if share >= 0.5 else "NEGATIVE"
    group = ""
    if kind == "NPS":
        group = "PROMOTER" if value >= 9 else "PASSIVE" if value >= 7 else "DETRACTOR"
    return survey, value, group, sentiment


def feedback_for(world: World, contact: SeedObject, number: int) -> list[SeedObject]:
    """The survey answers of one contact (none for about two thirds); ``number`` numbers their ids."""
    index = int(contact.id) - CONTACT_ID_BASE - 1
    rng = _rng(world.seed, "feedback", index)
    count = rng.choices((0, 1, 2), weights=(65, 27, 8))[0]
    out = []
    for k in range(count):
        survey, value, group, sentiment = _survey_answer(rng)
        sid, kind, name, _low, _high, _w = survey
        span = max(DAY, world.now_ms - DAY - contact.created_ms)
        submitted = contact.created_ms + int(rng.random() * span)
        email = contact.properties.get("email", "").strip()
        props = {
            "hs_survey_id": str(sid),
            "hs_survey_name": name,
            "hs_survey_type": kind,
            "hs_survey_channel": "EMAIL",
            "hs_value": str(value),
            "hs_sentiment": sentiment,
            "hs_submission_name": f"{name} - {email}",
            "hs_content": rng.choice(COMMENTS[sentiment]),
            "hs_submission_timestamp": iso_ms(submitted),
            "hs_contact_id": contact.id,
            "hs_contact_email_rollup": email,
            "hs_ingestion_id": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        if group:
            props["hs_response_group"] = group
        out.append(
            SeedObject(
                "feedback_submissions",
                str(FEEDBACK_ID_BASE + number + k),
                props,
                submitted,
                submitted + 1000,
                associations={"contacts": [contact.id]},
            )
        )
    return out


def with_journey(world: World, stream: Iterable[SeedObject]) -> Iterator[SeedObject]:
    """The world's records with each contact's original source, and after each contact its survey answers."""
    number = 1
    for obj in stream:
        if obj.object_type != "contacts":
            yield obj
            continue
        index = int(obj.id) - CONTACT_ID_BASE - 1
        obj.properties.update(contact_source(world.seed, index).properties)
        yield obj
        answers = feedback_for(world, obj, number)
        number += 2  # two ids reserved per contact: ids do not depend on earlier contacts' draws
        yield from answers


def _participations(world: World, contacts: int) -> list[tuple[int, int, int, str, int]]:
    """(id, event, contact, state, occurred) rows: event-sourced contacts, plus a share of the others."""
    rows: list[tuple[int, int, int, str, int]] = []
    for index in range(contacts):
        source = contact_source(world.seed, index)
        rng = _rng(world.seed, "attend", index)
        event = source.event or (EVENTS[rng.randrange(len(EVENTS))] if rng.random() < 0.1 else None)
        if event is None:
            continue
        state = rng.choices(("ATTENDED", "NO_SHOW", "CANCELLED", "REGISTERED"), weights=(70, 18, 8, 4))[0]
        occurred = world.now_ms - event.start_day * DAY - rng.randrange(1, 20) * DAY
        if state in ("ATTENDED", "NO_SHOW"):
            occurred = world.now_ms - event.start_day * DAY
        contact_id = int(world.contact_id(index))
        rows.append((len(rows) + 1, event_object_id(event.index), contact_id, state, occurred))
    return rows


def _event_body(world: World, e: Event) -> dict[str, object]:
    start = world.now_ms - e.start_day * DAY
    return {
        "eventName": e.name,
        "eventType": e.event_type,
        "eventOrganizer": e.organizer,
        "eventDescription": f"{CAMPAIGNS[e.campaign].name}：{e.name}",
        "eventUrl": f"https://events.example-erp.cn/{e.external_id}",
        "startDateTime": iso_ms(start),
        "endDateTime": iso_ms(start + e.hours * 3_600_000),
        "eventCancelled": False,
        "eventCompleted": True,
        "customProperties": [],
    }


def seed_marketing(db: sqlite3.Connection, world: World) -> dict[str, int]:
    """Replace campaigns, their assets, events and participations with the world's (one transaction)."""
    db.execute("BEGIN")
    for stmt in SCHEMA:
        db.execute(stmt)
    for table in TABLES:
        db.execute("DELETE FROM " + table)  # fixed table names
    for c in CAMPAIGNS:
        start = world.now_ms - c.start_day * DAY
        props = {
            "hs_name": c.name,
            "hs_notes": c.notes,
            "hs_audience": c.audience,
            "hs_currency_code": "CNY",
            "hs_start_date": iso_ms(start)[:10],
            "hs_end_date": iso_ms(start + c.length_days * DAY)[:10],
            "hs_campaign_status": "completed" if c.start_day - c.length_days > 0 else "in_progress",
            "hs_budget_items_sum_amount": str(c.budget),
            "hs_utm": f"campaign-{c.index + 1}",
        }
        guid = campaign_guid(world.seed, c.index)
        db.execute(
            "INSERT INTO mkt_campaign (guid, created_ms, updated_ms, props) VALUES (?, ?, ?, ?)",
            (guid, start - 14 * DAY, start, orjson.dumps(props)),
        )
        for e in (e for e in EVENTS if e.campaign == c.index):
            db.execute(
                "INSERT INTO mkt_asset (guid, asset_type, asset_id, name) VALUES (?, ?, ?, ?)",
                (guid, "MARKETING_EVENT", str(event_object_id(e.index)), e.name),
            )
        for n, (kind, label) in enumerate(
            (("LANDING_PAGE", "落地页"), ("FORM", "报名表单"), ("MARKETING_EMAIL", "邀请邮件"))
        ):
            db.execute(
                "INSERT INTO mkt_asset (guid, asset_type, asset_id, name) VALUES (?, ?, ?, ?)",
                (guid, kind, str(880_000_000 + c.index * 10 + n), f"{c.name} · {label}"),
            )
    for e in EVENTS:
        created = world.now_ms - (e.start_day + 30) * DAY
        db.execute(
            "INSERT INTO mkt_event (object_id, account_id, external_id, created_ms, updated_ms, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                event_object_id(e.index),
                EVENT_ACCOUNT,
                e.external_id,
                created,
                world.now_ms - e.start_day * DAY,
                orjson.dumps(_event_body(world, e)),
            ),
        )
    rows = _participations(world, world.n_companies * world.contacts_per_company)
    db.executemany(
        "INSERT INTO mkt_participation (id, event_id, contact_id, state, occurred_ms) VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    return {"campaigns": len(CAMPAIGNS), "marketing_events": len(EVENTS), "participations": len(rows)}
