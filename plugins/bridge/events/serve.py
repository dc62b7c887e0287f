"""``python -m bridge.events.serve``: the receiver as a small standalone service.

Binds 127.0.0.1 unless told otherwise (put a TLS reverse proxy in front for the
vendors). Secrets from the Connections ``crm_default`` / ``oa_default``; the
Redis it publishes to from the Connection ``bridge_events_redis``
(``include/settings.yaml`` ``events.redis_conn_id``). Refusals are audited in
the hub.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime

from bridge import settings
from bridge.events import config as events_config
from bridge.events.app import Receiver, create_app
from bridge.events.health import HubHealthWriter
from bridge.events.model import Refused
from bridge.events.rewake import DueWakes
from bridge.events.sink import MemorySink, RedisSink, Sink

log = logging.getLogger("bridge.events.serve")

SYSTEMS = {"crm": "crm", "oa": "oa"}


def hub_audit(source: str, exc: Refused, client: str) -> None:
    """One audit entry per refused delivery: reason and client address, never the body."""
    from bridge.context import RunContext
    from bridge.hub import audit, engine

    ctx = RunContext(dag_id=None, run_id=None, task_id=None, try_number=None, principal="events-receiver")
    with engine.get_engine().begin() as conn:
        audit.record(
            conn,
            ctx,
            audit.AuditEvent(
                "event_refused",
                SYSTEMS[source],
                "event_delivery",
                {"client": client[:100]},
                [],
                "refused",
                f"{exc.status} {exc.reason}",
            ),
        )


def build(dry_run: bool = False) -> Receiver:
    cfg = events_config.load()
    sink: Sink
    if dry_run:
        sink = MemorySink()
    else:
        conn = events_config._airflow_lookup(cfg.redis_conn_id) or {}
        sink = RedisSink.from_connection(conn)
    if cfg.hubspot is None:
        log.warning("crm_default has no webhook_client_secret: HubSpot deliveries will be answered 404")
    if cfg.feishu is None:
        log.warning("oa_default has no verification_token: Feishu deliveries will be answered 404")
    raw = settings.load()
    quiet = float((raw.get("debounce") or {}).get("quiet_seconds", 0) or 0)
    slack = float((raw.get("events") or {}).get("due_wake_slack_seconds", 5))
    due = DueWakes(quiet + slack) if quiet > 0 else None
    return Receiver(cfg, sink, audit=hub_audit, store=HubHealthWriter(), due_wakes=due)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.events.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--dry-run", action="store_true", help="keep wake messages in memory (no Redis)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    import uvicorn

    receiver = build(args.dry_run)
    log.info("events receiver on %s:%d since %s", args.host, args.port, datetime.now(UTC).isoformat())
    uvicorn.run(
        create_app(receiver),
        host=args.host,
        port=args.port,
        log_level="warning",
        limit_concurrency=200,
        timeout_keep_alive=5,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
