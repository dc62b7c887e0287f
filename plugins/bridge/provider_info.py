"""Provider metadata: registers the bridge's connection types with Airflow.

Airflow's ProvidersManager reads the ``apache_airflow_provider`` entry point
(pyproject.toml); this makes ``hubspot_crm`` and ``feishu_oa`` appear on the
Connections page, with the Test button calling the hooks' ``test_connection``.
"""

from __future__ import annotations

from typing import Any

from bridge.hooks.ui import connection_types


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "oa-crm-bridge",
        "name": "OA CRM Bridge",
        "description": "HubSpot CRM and Feishu approval hooks of the OA ⇄ CRM bridge.",
        "versions": ["0.1.0"],
        "connection-types": connection_types(),
    }
