"""``python -m sandbox.crm``: serve the HubSpot CRM v3 simulator on 127.0.0.1.

    python -m sandbox.crm --host 127.0.0.1 --port 8101 --db data/sandbox/crm.sqlite --seed 20261126

Default credentials are the constants of ``sandbox.launcher`` (documented in
``docs/sim_crm.md``). ``--max-lifetime`` makes an orphaned server exit by itself.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from sandbox import launcher
from sandbox.common.serve import serve
from sandbox.crm.app import Sim, create_app
from sandbox.crm.auth import AuthConfig
from sandbox.crm.seed import SeedRequest, seed_database


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox.crm", description="HubSpot CRM v3 simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8101)
    p.add_argument("--db", type=Path, default=Path("data/sandbox/crm.sqlite"))
    p.add_argument("--client-id", default=launcher.CRM_CLIENT_ID)
    p.add_argument("--client-secret", default=launcher.CRM_CLIENT_SECRET)
    p.add_argument("--refresh-token", default=launcher.CRM_REFRESH_TOKEN)
    p.add_argument("--private-app-token", default=launcher.CRM_PRIVATE_APP_TOKEN,
                   help="static bearer token also accepted (empty string: none)")
    p.add_argument("--token-ttl", type=int, default=1800, help="access token lifetime in seconds (HubSpot: 1800)")
    p.add_argument("--seed", type=int, default=None, help="load the demo world of this seed if the database is empty")
    p.add_argument("--max-lifetime", type=int, default=None, help="exit after this many seconds")
    p.add_argument("--rate-limits", choices=("hubspot", "off"), default="hubspot")
    p.add_argument("--burst", type=int, default=110, help="calls per 10 s per app/token (HubSpot OAuth apps: 110)")
    p.add_argument("--search-per-second", type=int, default=5, help="search calls per second (HubSpot: 5)")
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    auth = AuthConfig(client_id=args.client_id, client_secret=args.client_secret, refresh_token=args.refresh_token,
                      private_app_token=args.private_app_token or None)
    sim = Sim.create(args.db, auth, rate_limits=args.rate_limits == "hubspot", token_ttl_s=args.token_ttl,
                     burst=args.burst, search_per_s=args.search_per_second)
    if args.seed is not None and sim.store.is_empty():
        seed_database(args.db, SeedRequest(seed=args.seed))
        sim.store.set_world_seed(args.seed)
        sim.store.invalidate()
    serve(create_app(sim), args.host, args.port, log_level=args.log_level, max_lifetime=args.max_lifetime,
          timeout_keep_alive=75)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
