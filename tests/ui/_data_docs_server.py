"""The bridge pages app alone under uvicorn, for the Data Docs browser check (not the Airflow stack).

``python tests/ui/_data_docs_server.py --port N --data-dir D --hub-url U --max-lifetime S``
serves the app under ``/bridge`` on 127.0.0.1 with one fixed viewer logged in
(the login itself is tested in test_ui_airflow_auth.py), and exits by itself
after ``--max-lifetime`` seconds so an orphan cannot outlive its test. The test
that starts it stops it by its PID.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]


class DataOwner:
    """Always the same logged-in data owner."""

    async def __call__(self, request: object) -> object:
        from bridge.ui.auth import Viewer

        return Viewer("data-owner", may_release=False)


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from fastapi import FastAPI

    from bridge.ui.app import UiConfig, create_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--max-lifetime", type=float, default=300)
    args = parser.parse_args(argv)

    parent = FastAPI()
    parent.mount("/bridge", create_app(UiConfig(authenticator=DataOwner(), csrf_secret=b"data-docs-browser-check",
                                                hub_url=args.hub_url, data_dir=args.data_dir)))
    server = uvicorn.Server(uvicorn.Config(parent, host="127.0.0.1", port=args.port, log_level="warning"))
    timer = threading.Timer(args.max_lifetime, lambda: setattr(server, "should_exit", True))
    timer.daemon = True
    timer.start()
    server.run()


if __name__ == "__main__":
    main()
