"""What the Connection test adds about events: subscriptions of the synced approval definitions, deliveries seen.

The hooks cannot read the hub (layers, docs/architecture.md), so the Airflow
plugin registers these functions with ``bridge.hooks.connection_notes`` and the
Test button of ``oa_default`` / ``crm_default`` appends their lines (Chinese,
what staff read). Feishu has no API that lists an app's approval
subscriptions (``approval.yaml`` has ``subscribe`` and ``unsubscribe`` only), so
the OA line reports what the last ``bridge events subscribe`` recorded in the
audit log; both report the receiver's ``event_health`` row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.events.health import EventHealth


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "—"


def _deliveries(row: EventHealth | None, what: str, missing: str) -> str:
    if row is None or not row.received:
        return f"尚未收到任何{what}（{missing}）。"
    return (
        f"已收到{what} {row.received} 次（验证通过 {row.verified}、拒绝 {row.rejected}、重复 {row.duplicates}），"
        f"最近一次验证通过：{_when(row.last_verified_at)}。"
    )


def _form_labels() -> dict[str, str]:
    try:
        from bridge import dictionary

        return {name: form.label for name, form in dictionary.load().forms.items()}
    except Exception:  # a broken dictionary shows in its own checks; here the form key will do
        return {}


def oa_notes(_hook: Any) -> list[str]:
    """Per synced approval definition: its last recorded subscription; then the approval events received."""
    from bridge import settings
    from bridge.events import health, subscribe
    from bridge.hub import engine

    codes = subscribe.synced_codes(settings.load())
    labels = _form_labels()
    with engine.get_engine().connect() as conn:
        last = subscribe.last_results(conn, codes.values())
        row = health.read(conn, "oa")
    lines = ["审批事件订阅（飞书没有查询订阅的接口，以下为最近一次 bridge events subscribe 的结果）："]
    for form, code in codes.items():
        name = f"{labels.get(form, form)}（{code}）"
        got = last.get(code)
        if got is None:
            lines.append(f"  {name}：未记录订阅，请运行 bridge events subscribe。")
        elif got.outcome in ("subscribed", "already"):
            lines.append(f"  {name}：已订阅（{_when(got.at)}）。")
        else:
            lines.append(
                f"  {name}：订阅失败（{got.detail[:120]}），请检查应用权限后重新运行 bridge events subscribe。"
            )
    lines.append(_deliveries(row, "审批事件", "回调地址或长连接未配置时，同步仍每分钟轮询"))
    return lines


def crm_notes(_hook: Any) -> list[str]:
    """Whether HubSpot webhooks have reached the receiver (its ``event_health`` row)."""
    from bridge.events import health
    from bridge.hub import engine

    with engine.get_engine().connect() as conn:
        row = health.read(conn, "crm")
    return [
        "Webhook："
        + _deliveries(
            row, " HubSpot webhook 推送", "请在 HubSpot 应用的 Webhooks 页面配置目标地址，见 docs/events.md"
        )
    ]
