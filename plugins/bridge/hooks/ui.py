"""How the Connections page shows the two vendor connection types.

Airflow 3.2+ reads this declaratively from the provider info
(``conn-fields`` / ``ui-field-behaviour``, see ``bridge.provider_info``), without
importing the hooks; the hooks' ``get_ui_field_behaviour()`` /
``get_connection_form_widgets()`` return the same for older Airflow. Plain data,
no Airflow import: the provider info imports this module.
"""

from __future__ import annotations

from typing import Any

CRM_CONN_TYPE = "hubspot_crm"
OA_CONN_TYPE = "feishu_oa"

_TUNING_FIELDS: dict[str, dict[str, Any]] = {
    "read_timeout": {"label": "读取超时（秒）", "schema": {"type": ["number", "null"], "default": 60}},
    "max_attempts": {"label": "每次调用最多尝试次数", "schema": {"type": ["integer", "null"], "default": 5}},
    "max_retry_wait": {
        "label": "重试等待总时长上限（秒）",
        "schema": {"type": ["number", "null"], "default": 120},
    },
}

# The port has its own field, filled in (443 for HTTPS): Airflow 3.3's Test button sends ``port: 0`` for a
# Connection stored without a port, and the API then refuses the test as "a different endpoint"
# (apache/airflow#73298 fixes this in the API); a stored port makes the form and the stored Connection agree.
PORT_PLACEHOLDER = "443（HTTPS 默认端口；请填写，Connections 页面的 Test 按钮需要它）"

CRM_UI: dict[str, Any] = {
    "hook-name": "HubSpot CRM (OA ⇄ CRM bridge)",
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {
            "host": "API 地址（API base URL）",
            "port": "端口（Port）",
            "login": "Client ID（客户端 ID）",
            "password": "Client secret（客户端密钥）",
        },
        "placeholders": {
            "host": "https://api.hubapi.com",
            "port": PORT_PLACEHOLDER,
            "login": "OAuth 应用的 Client ID（私有应用留空）",
            "password": "OAuth 应用的 Client secret，或私有应用令牌（pat-…）",
            "refresh_token": "门户安装应用后换得的 refresh token",
            "auth": "oauth",
        },
    },
    "conn-fields": {
        "refresh_token": {
            "label": "Refresh token（刷新令牌）",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "auth": {
            "label": "Auth（认证方式）",
            "description": "oauth：Client ID + Client secret + Refresh token；private_app：密码栏填私有应用令牌",
            "schema": {"type": ["string", "null"], "enum": ["oauth", "private_app"], "default": "oauth"},
        },
        **_TUNING_FIELDS,
    },
}

OA_UI: dict[str, Any] = {
    "hook-name": "Feishu approval (OA ⇄ CRM bridge)",
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {
            "host": "API 地址（API base URL）",
            "port": "端口（Port）",
            "login": "App ID",
            "password": "App Secret",
        },
        "placeholders": {
            "host": "https://open.feishu.cn",
            "port": PORT_PLACEHOLDER,
            "login": "企业自建应用的 App ID（cli_…）",
            "password": "企业自建应用的 App Secret",
            "test_approval_code": "Test 按钮读取的审批定义 code（默认：settings 中立项申请的 code）",
        },
    },
    "conn-fields": {
        "test_approval_code": {"label": "Test 按钮使用的审批 code", "schema": {"type": ["string", "null"]}},
        **_TUNING_FIELDS,
    },
}


def field_behaviour(ui: dict[str, Any]) -> dict[str, Any]:
    """The ``get_ui_field_behaviour()`` form (snake_case keys) of a declarative block."""
    b = ui["ui-field-behaviour"]
    return {
        "hidden_fields": list(b["hidden-fields"]),
        "relabeling": dict(b["relabeling"]),
        "placeholders": dict(b["placeholders"]),
    }


def form_widgets(ui: dict[str, Any]) -> dict[str, Any]:
    """wtforms fields for Airflow versions that still build the form from hooks (needs wtforms)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from wtforms import PasswordField, StringField

    out: dict[str, Any] = {}
    for name, spec in ui["conn-fields"].items():
        if spec["schema"].get("format") == "password":
            out[name] = PasswordField(spec["label"], widget=BS3PasswordFieldWidget())
        else:
            out[name] = StringField(
                spec["label"], widget=BS3TextFieldWidget(), description=spec.get("description")
            )
    return out


def connection_types() -> list[dict[str, Any]]:
    """The ``connection-types`` entries of the provider info, with the declarative UI metadata."""
    return [
        {"hook-class-name": "bridge.hooks.crm.CrmHook", "connection-type": CRM_CONN_TYPE, **CRM_UI},
        {"hook-class-name": "bridge.hooks.oa.OaHook", "connection-type": OA_CONN_TYPE, **OA_UI},
    ]
