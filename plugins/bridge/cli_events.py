"""``bridge events …``: subscribe the vendors' events, show the receiver's health row."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    events = sub.add_parser("events", help="vendor events: subscribe, status, listen (docs/events.md)")
    actions = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    subscribe = actions.add_parser(
        "subscribe", help="subscribe Feishu approval events; print HubSpot's webhook set-up"
    )
    subscribe.add_argument(
        "--public-url", default="", help="the receiver's public base URL (for the printed set-up)"
    )
    subscribe.set_defaults(handler=_subscribe)
    status = actions.add_parser(
        "status", help="the receiver's health row per vendor (received/verified/rejected/lag)"
    )
    status.set_defaults(handler=_status)
    listen = actions.add_parser(
        "listen", help="receive Feishu events over the long connection (no public URL needed)"
    )
    listen.add_argument(
        "--max-seconds", type=float, default=0.0, help="stop after this long (0 = until SIGTERM)"
    )
    listen.add_argument("--dry-run", action="store_true", help="keep wake messages in memory (no Redis)")
    listen.set_defaults(handler=_listen)


def _subscribe(args: argparse.Namespace) -> int:
    from bridge import settings
    from bridge.events import subscribe
    from bridge.hooks.oa import OaHook

    base = args.public_url.rstrip("/")
    hook = OaHook()
    try:
        results = subscribe.subscribe_feishu(hook, subscribe.synced_codes(settings.load()))
    finally:
        hook.close()
    for r in results:
        print(f"feishu  {r.form:<22} {r.approval_code}  {r.outcome}")
    try:  # Feishu lists no subscriptions: the Connection test reports what was recorded here
        from bridge.hub import engine

        with engine.ensure_schema().begin() as conn:
            subscribe.record(conn, results)
    except Exception as exc:
        print(f"warning: the results were not recorded in the hub ({type(exc).__name__}: {exc})")
    if base:
        print(
            f"feishu  event request URL: {base}/events/feishu (Encrypt Key and Verification Token: oa_default extras)"
        )
    for line in subscribe.hubspot_instructions(f"{base}/events/hubspot" if base else ""):
        print(line)
    return 1 if any(r.outcome.startswith("failed") for r in results) else 0


def _listen(args: argparse.Namespace) -> int:
    import logging

    from bridge.events import longconn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return longconn.main(args.max_seconds, args.dry_run)


def _status(_args: argparse.Namespace) -> int:
    from bridge.events import health
    from bridge.hub import engine

    with engine.ensure_schema().connect() as conn:
        rows = [health.read(conn, source) for source in ("crm", "oa")]
    for source, row in zip(("crm", "oa"), rows, strict=True):
        if row is None:
            print(f"{source}: no delivery received yet (polling every minute)")
            continue
        print(
            f"{source}: received {row.received}, verified {row.verified}, rejected {row.rejected}, "
            f"duplicates {row.duplicates}, enqueued {row.enqueued}; last event {row.last_event_at}, "
            f"last verified {row.last_verified_at}, lag {row.lag_ms} ms, last poll {row.last_poll_at}"
        )
    return 0
