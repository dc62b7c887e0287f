"""Property definitions of the customer-journey data (pure data; ``sandbox.crm.model`` builds them).

Kept apart from ``model`` so the journey's vocabulary reads in one place: the contact's original
source (HubSpot's default contact properties ``hs_analytics_source``, ``..._data_1``, ``..._data_2``
and ``hs_analytics_first_touch_converting_campaign``, all calculated by HubSpot: read-only) and the
feedback submission object (``0-19``, read-only through the API). Each entry is
``(name, label, type, field_type, options, read_only)``; citations in ``docs/sim_crm.md``.
"""

from __future__ import annotations

PropertySpec = tuple[str, str, str, str, tuple[tuple[str, str], ...], bool]

FEEDBACK_TYPE = ("feedback_submissions", 19, "feedback_submission", "反馈提交")
FEEDBACK_ID_BASE = 60_000_000_000
# contact <-> feedback submission: HubSpot publishes no fixed id for this pair (GET
# /crm/v4/associations/{from}/{to}/labels answers the portal's); these are the simulator's.
FEEDBACK_ASSOCIATIONS: dict[tuple[str, str], tuple[int, None]] = {
    ("feedback_submissions", "contacts"): (1101, None),
    ("contacts", "feedback_submissions"): (1102, None),
}

SOURCES: tuple[tuple[str, str], ...] = (
    ("ORGANIC_SEARCH", "自然搜索"),
    ("PAID_SEARCH", "付费搜索"),
    ("EMAIL_MARKETING", "电子邮件营销"),
    ("SOCIAL_MEDIA", "自然社交"),
    ("REFERRALS", "推荐"),
    ("OTHER_CAMPAIGNS", "其他营销活动"),
    ("DIRECT_TRAFFIC", "直接流量"),
    ("OFFLINE", "线下来源"),
    ("PAID_SOCIAL", "付费社交"),
)
CONTACT_SOURCE_PROPERTIES: tuple[PropertySpec, ...] = (
    ("hs_analytics_source", "原始来源", "enumeration", "select", SOURCES, True),
    ("hs_analytics_source_data_1", "原始来源细分 1", "string", "text", (), True),
    ("hs_analytics_source_data_2", "原始来源细分 2", "string", "text", (), True),
    ("hs_analytics_first_touch_converting_campaign", "首次触达转化营销活动", "string", "text", (), True),
)

SURVEY_TYPES: tuple[tuple[str, str], ...] = (
    ("NPS", "净推荐值"),
    ("CSAT", "客户满意度"),
    ("CES", "客户费力度"),
    ("CUSTOM", "自定义"),
)
RESPONSE_GROUPS: tuple[tuple[str, str], ...] = (
    ("PROMOTER", "推荐者"),
    ("PASSIVE", "被动者"),
    ("DETRACTOR", "贬损者"),
)
SENTIMENTS: tuple[tuple[str, str], ...] = (("POSITIVE", "正面"), ("NEUTRAL", "中性"), ("NEGATIVE", "负面"))
CHANNELS: tuple[tuple[str, str], ...] = (("EMAIL", "邮件"), ("WEB", "网页"), ("LINK", "链接"))
FEEDBACK_PROPERTIES: tuple[PropertySpec, ...] = (
    ("hs_survey_id", "调查 ID", "number", "number", (), True),
    ("hs_survey_name", "调查名称", "string", "text", (), True),
    ("hs_survey_type", "调查类型", "enumeration", "select", SURVEY_TYPES, True),
    ("hs_survey_channel", "调查渠道", "enumeration", "select", CHANNELS, True),
    ("hs_submission_name", "提交名称", "string", "text", (), True),
    ("hs_submission_timestamp", "提交时间", "datetime", "date", (), True),
    ("hs_value", "评分", "number", "number", (), True),
    ("hs_response_group", "回答分组", "enumeration", "select", RESPONSE_GROUPS, True),
    ("hs_sentiment", "情感", "enumeration", "select", SENTIMENTS, True),
    ("hs_content", "回答内容", "string", "textarea", (), True),
    ("hs_contact_id", "联系人 ID", "number", "number", (), True),
    ("hs_contact_email_rollup", "联系人电子邮件", "string", "text", (), True),
    ("hs_ingestion_id", "导入 ID", "string", "text", (), True),
)
FEEDBACK_DEFAULT_PROPERTIES = (
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
    "hs_survey_name",
    "hs_survey_type",
    "hs_sentiment",
    "hs_submission_timestamp",
)
FEEDBACK_QUERY_PROPERTIES = ("hs_submission_name", "hs_content", "hs_survey_name")
