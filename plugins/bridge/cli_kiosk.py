"""``bridge kiosk create|list|revoke``: kiosk links of the office wallboard (大屏).

A kiosk link opens ``/bridge/wallboard`` and its data without an Airflow
login (see :mod:`bridge.ui.kiosk`). ``create`` prints the link once — the hub
keeps only its hash, so a lost link is revoked and a new one created.
Run it where the API server finds the same key: the same ``BRIDGE_KIOSK_SECRET``,
or the same data folder (``BRIDGE_DATA_DIR``, file ``kiosk.key``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bridge.cli_hub import CliError, _engine, _guarded, _local_time, _print_json, _transaction, hub_url_option
from bridge.ui import kiosk

WALLBOARD_PATH = "/bridge/wallboard/kiosk/"


def kiosk_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{WALLBOARD_PATH}{token}"


def _base_url(args: argparse.Namespace) -> str:
    return str(args.base_url or os.environ.get("AIRFLOW__API__BASE_URL") or "http://localhost:8080")


def cmd_kiosk_create(args: argparse.Namespace) -> int:
    try:
        key = kiosk.signing_key(create=True)
    except kiosk.KioskKeyMissing as exc:
        raise CliError(str(exc)) from exc
    if key is None:  # create=True makes one; a None here is a bug, not a user error
        raise CliError("internal error: no kiosk key after creating one", code=1)
    if not args.by.strip():
        raise CliError("--by 不能为空：请写明是谁生成这个大屏链接（记入中枢库）。")
    if args.replace and not args.label:
        raise CliError("--replace 需要 --label：按屏幕名称收回它原来的链接。")
    with _transaction(args) as conn:
        replaced = kiosk.revoke_screen(conn, args.label, args.by) if args.replace else []
        token, link = kiosk.create(conn, key, args.by, label=args.label)
    url = kiosk_url(_base_url(args), token)
    if args.json:
        _print_json(
            {
                "token_id": link.token_id,
                "url": url,
                "label": link.label,
                "created_by": link.created_by,
                "created_at": link.created_at,
                "revoked": replaced,
            }
        )
        return 0
    print(f"大屏链接（只显示这一次，请妥善保存；中枢库只保存其哈希）：\n{url}")
    print(f"编号 {link.token_id}　收回：bridge kiosk revoke {link.token_id} --by <你的名字>")
    if replaced:
        print(f"已收回该屏幕原来的链接：{'、'.join(replaced)}")
    return 0


def cmd_kiosk_list(args: argparse.Namespace) -> int:
    with _engine(args).connect() as conn:
        links = kiosk.list_links(conn, include_revoked=args.all)
    if args.json:
        _print_json(
            [
                {
                    "token_id": lk.token_id,
                    "label": lk.label,
                    "created_by": lk.created_by,
                    "created_at": lk.created_at,
                    "revoked_at": lk.revoked_at,
                    "revoked_by": lk.revoked_by,
                    "active": lk.active,
                }
                for lk in links
            ]
        )
        return 0
    if not links:
        print("没有有效的大屏链接。" if not args.all else "没有大屏链接。")
        return 0
    for lk in links:
        state = "有效" if lk.active else f"已收回（{_local_time(lk.revoked_at)}，{lk.revoked_by}）"
        print(
            f"{lk.token_id}  {state}  创建 {_local_time(lk.created_at)} {lk.created_by}  {lk.label or ''}".rstrip()
        )
    return 0


def cmd_kiosk_revoke(args: argparse.Namespace) -> int:
    token_id = kiosk.token_id_of(args.token)
    try:
        with _transaction(args) as conn:
            link = kiosk.revoke(conn, token_id, args.by)
    except kiosk.KioskTokenNotFound as exc:
        raise CliError(
            f"没有编号为 {token_id} 的大屏链接；用 `bridge kiosk list --all` 查看全部编号。"
        ) from exc
    print(
        f"大屏链接 {link.token_id} 已收回（{_local_time(link.revoked_at)}，{link.revoked_by}）；"
        "打开它的屏幕在下一次刷新时显示“链接已失效”。"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``bridge kiosk`` to the parser."""
    common = hub_url_option("SQLAlchemy URL of the hub (default: BRIDGE_HUB_URL, the bridge_hub Connection)")
    k = subparsers.add_parser("kiosk", help="大屏链接：生成、列出、收回（免登录、只读）")
    ks = k.add_subparsers(dest="kiosk_command", required=True, metavar="ACTION")
    kc = ks.add_parser("create", parents=[common], help="生成一个大屏链接（只显示一次）")
    kc.add_argument("--by", required=True, help="生成人（记入中枢库）")
    kc.add_argument("--label", help="屏幕位置，如 三楼销售区")
    kc.add_argument("--replace", action="store_true", help="先收回同一屏幕（--label）原来的有效链接")
    kc.add_argument(
        "--base-url", help="Airflow 的地址（默认 AIRFLOW__API__BASE_URL 或 http://localhost:8080）"
    )
    kc.add_argument("--json", action="store_true")
    kc.set_defaults(handler=_guarded(cmd_kiosk_create))
    kl = ks.add_parser("list", parents=[common], help="列出大屏链接（默认只列有效的）")
    kl.add_argument("--all", action="store_true", help="包括已收回的")
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(handler=_guarded(cmd_kiosk_list))
    kr = ks.add_parser("revoke", parents=[common], help="收回一个大屏链接（编号或整个链接令牌）")
    kr.add_argument("token", help="链接编号（bridge kiosk list 中的第一列）或完整令牌")
    kr.add_argument("--by", required=True, help="收回人（记入中枢库）")
    kr.set_defaults(handler=_guarded(cmd_kiosk_revoke))
