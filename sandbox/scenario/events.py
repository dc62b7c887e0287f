"""The demo of issue 18: an approval decided in the OA reaches the deal in the CRM within seconds, through an event.

``scene(sims, demo_dir) -> list[str]`` (played after the OA → CRM run's other scenes): the event path of
``make airflow`` (:mod:`sandbox.events_local`: a private Redis and the receiver service, the OA simulator
pushing encrypted and signed ``approval_instance`` events to it) is started; an approver decides a pending
立项申请; the receiver verifies the delivery and publishes a small wake message on Redis, which this scene
waits for as the DAG's AssetWatcher does; then one OA → CRM sync runs in this process (the DAG's tasks) and
the deal's 审批状态 is read back from the CRM. The lines give the seconds of each leg. Without
``redis-server`` the scene says so and plays nothing (polling does the work then).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sandbox import events_local


def _pending_project(sims: Any, demo_dir: Path) -> tuple[str, str, str] | None:
    """A pending 立项申请 the hub links to a live deal: (instance code, serial number, deal id)."""
    from sqlalchemy import select

    from bridge.hub import engine
    from bridge.hub.schema import xref

    hub = engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}")
    with hub.connect() as conn:
        links = {str(r.oa_id): str(r.crm_id) for r in conn.execute(
            select(xref.c.oa_id, xref.c.crm_id).where(xref.c.link_type == "deal_project"))}
    items = sims.oa.admin("GET", "/_sim/instances?approval=project_initiation&limit=1000")["items"]
    for item in sorted(items, key=lambda i: str(i["instance_code"])):
        deal = links.get(str(item["instance_code"]))
        if item.get("status") == "PENDING" and deal and _deal(sims, deal) is not None:
            return str(item["instance_code"]), str(item.get("serial_number") or item["instance_code"]), deal
    return None


def _deal(sims: Any, deal_id: str) -> dict[str, Any] | None:
    """The deal's properties, or None when it is archived or unknown."""
    page = sims.crm.admin("GET", f"/_sim/objects/deals?after={int(deal_id) - 1}&limit=2")
    found = next((d for d in page["results"] if d["id"] == deal_id and not d.get("archived")), None)
    return found["properties"] if found else None


def scene(sims: Any, demo_dir: Path) -> list[str]:
    if shutil.which("redis-server") is None:
        return ["事件演示跳过：本机未安装 redis-server（同步照常按计划轮询；见 docs/events.md）"]
    chosen = _pending_project(sims, demo_dir)
    if chosen is None:
        return ["事件演示跳过：没有待审批的立项申请"]
    code, serial, deal = chosen
    env = {**os.environ, "BRIDGE_DATA_DIR": str(demo_dir),
           "AIRFLOW_CONN_BRIDGE_HUB": json.dumps({"conn_type": "sqlite", "host": str(demo_dir / "hub.sqlite")})}
    stack = events_local.start(env, sims, demo_dir / "logs")
    try:
        return _play(sims, demo_dir, env, (code, serial), deal)
    finally:
        stack.stop()


def _play(sims: Any, demo_dir: Path, env: dict[str, str], project: tuple[str, str], deal: str) -> list[str]:
    import redis

    from bridge.events.model import CHANNELS

    code, serial = project
    conn = json.loads(env["AIRFLOW_CONN_BRIDGE_EVENTS_REDIS"])
    client = redis.Redis(host=conn["host"], port=int(conn["port"]), socket_timeout=2.0)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNELS["oa"])
    try:
        started = time.monotonic()
        sims.oa.admin("POST", "/_sim/act/approve", {"instance_code": code})
        message = None
        while message is None and time.monotonic() - started < 20:
            message = pubsub.get_message(timeout=1.0)
        woken = time.monotonic() - started
    finally:
        pubsub.close()
        client.close()
    if message is None:
        return [f"OA: 立项申请 {serial} 已审批通过，但 20 秒内没有收到事件（轮询会在下一分钟补上）"]
    wake = json.loads(message["data"])
    from sandbox.scenario.oa_to_crm_sync import sync_once

    sync_once(sims, demo_dir)
    total = time.monotonic() - started
    status = (_deal(sims, deal) or {}).get("oa_approval_status")
    return [
        f"OA: 立项申请 {serial} 审批通过；{woken:.2f} 秒后事件接收服务校验通过（加密 + 签名）并发出唤醒消息"
        f"（{wake.get('record_type')} {wake.get('record_id')}，只有编号，不含审批内容）",
        f"CRM: 商机 {deal} 审批状态 {status}，从审批到 CRM 共 {total:.2f} 秒（同步由事件立即唤醒，轮询仍作兜底）",
    ]
