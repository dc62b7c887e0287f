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
    "read_timeout": {"label": "Read timeout (s)", "schema": {"type": ["number", "null"], "default": 60}},
    "max_attempts": {"label": "Max attempts per call", "schema": {"type": ["integer", "null"], "default": 5}},
    "max_retry_wait": {"label": "Max total retry wait (s)", "schema": {"type": ["number", "null"], "default": 120}},
}

CRM_UI: dict[str, Any] = {
    "hook-name": "HubSpot CRM (OA ⇄ CRM bridge)",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
        "placeholders": {
            "host": "https://api.hubapi.com",
            "login": "OAuth app client id (leave empty for a private app)",
            "password": "OAuth client secret, or the private-app token (pat-…)",
            "refresh_token": "refresh token of the portal's installation",
            "auth": "oauth",
        },
    },
    "conn-fields": {
        "refresh_token": {"label": "Refresh token", "schema": {"type": ["string", "null"], "format": "password"}},
        "auth": {"label": "Auth", "description": "oauth (client id + secret + refresh token) or private_app "
                                                 "(the password field holds the private-app token)",
                 "schema": {"type": ["string", "null"], "enum": ["oauth", "private_app"], "default": "oauth"}},
        **_TUNING_FIELDS,
    },
}

OA_UI: dict[str, Any] = {
    "hook-name": "Feishu approval (OA ⇄ CRM bridge)",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "API base URL", "login": "App ID", "password": "App secret"},
        "placeholders": {
            "host": "https://open.feishu.cn",
            "login": "cli_…",
            "password": "app secret of the self-built app",
            "test_approval_code": "approval code read by the Test button (default: 立项申请 from settings)",
        },
    },
    "conn-fields": {
        "test_approval_code": {"label": "Approval code for the Test button",
                               "schema": {"type": ["string", "null"]}},
        **_TUNING_FIELDS,
    },
}


def field_behaviour(ui: dict[str, Any]) -> dict[str, Any]:
    """The ``get_ui_field_behaviour()`` form (snake_case keys) of a declarative block."""
    b = ui["ui-field-behaviour"]
    return {"hidden_fields": list(b["hidden-fields"]), "relabeling": dict(b["relabeling"]),
            "placeholders": dict(b["placeholders"])}


def form_widgets(ui: dict[str, Any]) -> dict[str, Any]:
    """wtforms fields for Airflow versions that still build the form from hooks (needs wtforms)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from wtforms import PasswordField, StringField

    out: dict[str, Any] = {}
    for name, spec in ui["conn-fields"].items():
        if spec["schema"].get("format") == "password":
            out[name] = PasswordField(spec["label"], widget=BS3PasswordFieldWidget())
        else:
            out[name] = StringField(spec["label"], widget=BS3TextFieldWidget(), description=spec.get("description"))
    return out


def connection_types() -> list[dict[str, Any]]:
    """The ``connection-types`` entries of the provider info, with the declarative UI metadata."""
    return [
        {"hook-class-name": "bridge.hooks.crm.CrmHook", "connection-type": CRM_CONN_TYPE, **CRM_UI},
        {"hook-class-name": "bridge.hooks.oa.OaHook", "connection-type": OA_CONN_TYPE, **OA_UI},
    ]
