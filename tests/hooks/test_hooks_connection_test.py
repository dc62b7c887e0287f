"""The Connections page's Test button over the real simulators: what an IT engineer reads.

Right credentials name what was reached (HubSpot portal, Feishu app); wrong ones give the vendor's reason in
Chinese plus the vendor's own code; a Connection stored the way the Connections form stores it (API base URL
in Host, the port in its own field) reaches the same server as one with the port inside the URL.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.hooks.hooks_support import RATE_LIMITS_OFF, SEEDED, Sim, connection, crm_conn, oa_conn, sim_fixture

from bridge import cli, settings
from bridge.events import subscribe
from bridge.events.app import Receiver
from bridge.events.config import Limits, ReceiverConfig
from bridge.events.health import HubHealthWriter
from bridge.events.model import WakeMessage
from bridge.events.sink import MemorySink
from bridge.hooks import connection_notes
from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import ConnectionConfigError
from bridge.hooks.oa import OaHook
from bridge.hub import engine as hub_engine
from sandbox import launcher
from sandbox.crm.store import PORTAL_ID

CJK = re.compile(r"[\u4e00-\u9fff]")


crm = sim_fixture("crm", "crm_test_button", *RATE_LIMITS_OFF, *SEEDED)
oa = sim_fixture("oa", "oa_test_button", *SEEDED)


def form_shaped(url: str, conn: dict[str, object]) -> dict[str, object]:
    """The Connection as the Connections form stores it: scheme://host in Host, the port in its own field."""
    parts = urlsplit(url)
    return {**conn, "host": f"{parts.scheme}://{parts.hostname}", "port": parts.port}


def test_crm_right_credentials_name_the_portal(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = CrmHook(connection(monkeypatch, form_shaped(crm.url, crm_conn(crm.url)))).test_connection()
    assert ok, message
    assert message.startswith("连接成功")
    assert f"HubSpot 门户 {PORTAL_ID}" in message
    assert crm.url in message  # the port field made it into the base URL


def test_crm_private_app_token(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "hubspot_crm",
        "host": crm.url,
        "password": launcher.CRM_PRIVATE_APP_TOKEN,
        "extra": {"auth": "private_app"},
    }
    ok, message = CrmHook(connection(monkeypatch, conn)).test_connection()
    assert ok, message
    assert "私有应用令牌有效" in message
    bad = {**conn, "password": "pat-not-the-token"}
    ok, message = CrmHook(connection(monkeypatch, bad)).test_connection()
    assert not ok
    assert "私有应用令牌不正确或已被撤销" in message
    assert "pat-not-the-token" not in message


@pytest.mark.parametrize(
    ("field", "value", "reason", "code"),
    [
        ("password", "wrong-secret-value", "Client secret（客户端密钥）不正确", "BAD_CLIENT_SECRET"),
        ("login", "not-our-client", "Client ID（客户端 ID）不存在或已被停用", "BAD_CLIENT_ID"),
        (
            "refresh_token",
            "not-the-refresh-token",
            "Refresh token（刷新令牌）无效或已被撤销",
            "BAD_REFRESH_TOKEN",
        ),
    ],
)
def test_crm_wrong_credentials_give_the_vendor_reason_in_chinese(
    crm: Sim, monkeypatch: pytest.MonkeyPatch, field: str, value: str, reason: str, code: str
) -> None:
    conn = form_shaped(crm.url, crm_conn(crm.url))
    if field == "refresh_token":
        conn["extra"] = {"refresh_token": value}
    else:
        conn[field] = value
    ok, message = CrmHook(connection(monkeypatch, conn)).test_connection()
    assert not ok
    assert message.startswith("HubSpot CRM 连接测试失败："), message
    assert reason in message
    assert f"厂商原文：HTTP 400 {code}" in message  # the vendor's own words follow, for its docs
    assert value not in message


def test_crm_unreachable_and_incomplete(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {**crm_conn("http://127.0.0.1"), "port": 9, "extra": {"refresh_token": "x", "max_attempts": 1}}
    ok, message = CrmHook(connection(monkeypatch, conn)).test_connection()
    assert not ok
    assert "无法连接到 http://127.0.0.1:9" in message
    ok, message = CrmHook(
        connection(monkeypatch, {"conn_type": "hubspot_crm", "host": "http://127.0.0.1:9"})
    ).test_connection()
    assert not ok
    assert "连接信息不完整" in message
    assert "Refresh token" in message


def test_oa_right_credentials_name_the_app_and_approval(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = OaHook(connection(monkeypatch, form_shaped(oa.url, oa_conn(oa.url)))).test_connection()
    assert ok, message
    assert message.startswith("连接成功")
    assert f"企业自建应用 {launcher.OA_APP_ID}" in message
    assert "审批定义「立项申请」可读取" in message
    assert oa.url in message


@pytest.mark.parametrize(
    ("field", "value", "reason", "code"),
    [
        ("password", "not-the-secret", "App Secret 不正确", "10014"),
        ("login", "cli_not_our_app", "App ID 不存在", "10003"),
    ],
)
def test_oa_wrong_credentials_give_the_vendor_reason_in_chinese(
    oa: Sim, monkeypatch: pytest.MonkeyPatch, field: str, value: str, reason: str, code: str
) -> None:
    conn = {**form_shaped(oa.url, oa_conn(oa.url)), field: value}
    ok, message = OaHook(connection(monkeypatch, conn)).test_connection()
    assert not ok
    assert message.startswith("飞书审批 连接测试失败："), message
    assert reason in message
    assert f"厂商原文：HTTP 400 {code}" in message or f"厂商原文：HTTP 200 {code}" in message, message
    assert value not in message


def test_oa_unknown_test_approval_code(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = oa_conn(oa.url, test_approval_code="NO-SUCH-APPROVAL")
    ok, message = OaHook(connection(monkeypatch, conn)).test_connection()
    assert not ok
    assert "审批定义不存在" in message
    assert "1390002" in message


def test_port_field_and_host_url_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    def base(host: str, port: int | None, schema: str | None = None) -> str:
        return CrmHook("x")._base_url_of(host, schema, port)

    assert base("http://127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert base("http://127.0.0.1:8123", 8123) == "http://127.0.0.1:8123"
    assert base("http://127.0.0.1:8123/", None) == "http://127.0.0.1:8123"
    assert base("https://api.hubapi.com", 443) == "https://api.hubapi.com"
    assert base("https://proxy.example.com/hubspot", 8443) == "https://proxy.example.com:8443/hubspot"
    assert base("api.hubapi.com", 0) == "https://api.hubapi.com"
    assert base("[::1]", 8123, "http") == "http://[::1]:8123"
    with pytest.raises(ConnectionConfigError) as info:
        base("http://127.0.0.1:8123", 9000)
    assert "8123" in info.value.reason_zh
    assert "9000" in info.value.reason_zh
    conn = {**crm_conn("http://127.0.0.1:8123"), "port": 9000}
    ok, message = CrmHook(connection(monkeypatch, conn)).test_connection()
    assert not ok
    assert message == "HubSpot CRM 连接配置有误：API 地址中的端口 8123 与端口栏的 9000 不一致，请只保留一个。"
    ok, message = OaHook(
        connection(monkeypatch, {"conn_type": "feishu_oa", "login": "a", "password": "b"})
    ).test_connection()
    assert not ok
    assert "未填写 API 地址" in message


def test_every_failure_message_is_chinese(crm: Sim, oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults the vendor can answer with: each message says why in Chinese (an IT engineer reads it)."""
    crm.admin("DELETE", "/faults")
    crm.fault(kind="error", status=503, path="/owners", count=10)
    h = CrmHook(connection(monkeypatch, crm_conn(crm.url, max_attempts=1)))
    messages = [h.test_connection()[1]]
    crm.admin("DELETE", "/faults")
    oa.admin("POST", "/tokens/revoke")
    try:
        messages.append(OaHook(connection(monkeypatch, oa_conn(oa.url))).test_connection()[1])
    finally:
        oa.admin("POST", "/tokens/restore")
    assert "对方服务暂时不可用" in messages[0]
    assert all(CJK.search(m.split("厂商原文")[0]) for m in messages), messages


# --------------------------------------------------------------------- events (issue 18)
@pytest.fixture
def event_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The notes the Airflow plugin registers, over a hub of this test's own; unregistered afterwards."""
    import bridge_plugin

    importlib.reload(bridge_plugin)  # the composition root registers them when Airflow loads it
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    monkeypatch.setenv("BRIDGE_HUB_URL", hub)
    hub_engine.upgrade(hub)
    yield hub
    connection_notes.unregister("oa", "bridge.events.status:oa_notes")
    connection_notes.unregister("crm", "bridge.events.status:crm_notes")
    hub_engine.get_engine(hub).dispose()


def _delivered(source: str) -> None:
    """One verified delivery through the receiver, its health row flushed to the hub as the service does."""
    receiver = Receiver(ReceiverConfig(None, None, Limits()), MemorySink(), store=HubHealthWriter())
    receiver.admit(source)
    receiver.settle(source, [WakeMessage(source, "deal", "1", "2026-12-07T10:00:00.000+00:00", f"{source}:1")])
    assert receiver.store is not None
    receiver.store.flush(time.time(), force=True)


def test_oa_test_reports_each_synced_approval_subscription(
    oa: Sim, event_notes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = connection(monkeypatch, oa_conn(oa.url))
    codes = subscribe.synced_codes(settings.load())
    assert codes, "settings.yaml names the approval definitions the syncs read"
    ok, before = OaHook(conn_id).test_connection()
    assert ok, before
    assert "飞书没有查询订阅的接口" in before
    assert before.count("未记录订阅，请运行 bridge events subscribe") == len(codes)
    assert "尚未收到任何审批事件" in before

    # the real command subscribes through the Connection and records what Feishu answered
    monkeypatch.setenv("AIRFLOW_CONN_OA_DEFAULT", json.dumps(oa_conn(oa.url)))
    assert cli.main(["events", "subscribe"]) == 0
    _delivered("oa")
    ok, after = OaHook(conn_id).test_connection()
    assert ok, after
    assert "未记录订阅" not in after
    assert after.count("：已订阅（") == len(codes)
    assert f"立项申请（{codes['project_initiation']}）：已订阅" in after
    assert "已收到审批事件 1 次（验证通过 1、拒绝 0、重复 0）" in after
    assert CJK.search(after)


def test_crm_test_reports_whether_webhooks_arrived(
    crm: Sim, event_notes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_conn = connection(monkeypatch, crm_conn(crm.url))
    ok, before = CrmHook(hook_conn).test_connection()
    assert ok, before
    assert "尚未收到任何 HubSpot webhook 推送" in before
    _delivered("crm")
    ok, after = CrmHook(hook_conn).test_connection()
    assert ok, after
    assert "已收到 HubSpot webhook 推送 1 次" in after
    assert after.startswith("连接成功")


def test_a_note_that_fails_never_fails_the_test(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_HUB_URL", "sqlite:////nonexistent-dir/hub.sqlite")
    connection_notes.register("oa", "bridge.events.status:oa_notes")
    try:
        ok, message = OaHook(connection(monkeypatch, oa_conn(oa.url))).test_connection()
    finally:
        connection_notes.unregister("oa", "bridge.events.status:oa_notes")
    assert ok, message
    assert "附加检查 oa_notes 无法完成" in message
