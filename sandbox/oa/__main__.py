"""``python -m sandbox.oa``: start the OA simulator (Feishu approval v4) with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.common.serve import serve
from sandbox.launcher import OA_APP_ID, OA_APP_SECRET
from sandbox.oa.app import SimConfig, create_app
from sandbox.oa.definitions import DEFAULT_DICTIONARY, DefinitionError


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox.oa", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8602)
    p.add_argument("--db", type=Path, default=Path("data/sandbox/oa.sqlite"))
    p.add_argument("--app-id", default=OA_APP_ID)
    p.add_argument("--app-secret", default=OA_APP_SECRET)
    p.add_argument("--seed", type=int, default=None, help="seed World(seed) history when the database is empty")
    p.add_argument("--max-lifetime", type=float, default=0, help="exit after this many seconds (0 = never)")
    p.add_argument("--rate-limits", choices=["feishu", "off"], default="feishu")
    p.add_argument("--token-ttl", type=int, default=7200, help="tenant_access_token lifetime in seconds")
    p.add_argument("--expired-token-code", type=int, choices=[99991663, 99991677], default=99991663)
    p.add_argument("--uuid-replay", choices=["conflict", "return"], default="conflict")
    p.add_argument("--max-list-window-hours", type=float, default=10)
    p.add_argument("--query-lag-ms", type=int, default=0)
    p.add_argument("--dictionary", type=Path, default=DEFAULT_DICTIONARY)
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = SimConfig(db=args.db, app_id=args.app_id, app_secret=args.app_secret, seed=args.seed,
                    rate_limits=args.rate_limits, token_ttl=args.token_ttl,
                    expired_token_code=args.expired_token_code, uuid_replay=args.uuid_replay,
                    max_list_window_hours=args.max_list_window_hours, query_lag_ms=args.query_lag_ms,
                    dictionary=args.dictionary)
    try:
        app = create_app(cfg)
    except DefinitionError as exc:
        print(f"OA simulator: {exc}", file=sys.stderr)
        return 2
    serve(app, args.host, args.port, log_level=args.log_level, max_lifetime=args.max_lifetime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
