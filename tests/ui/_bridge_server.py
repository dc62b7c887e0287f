"""The bridge pages app alone under uvicorn, for the browser checks that need no Airflow (Data Docs, 大屏).

``python tests/ui/_bridge_server.py --port N --data-dir D --hub-url U [--max-lifetime S] [--anonymous]``
serves the app under ``/bridge`` on 127.0.0.1 with one fixed viewer logged in
(the login itself is tested in test_ui_airflow_auth.py) or, with
``BRIDGE_TEST_VIEWER_COOKIE=1`` in its environment, the viewer named by the
browser's ``bridge_test_viewer`` cookie (one browser context per role), or, with
``--anonymous``, nobody (every login-only page answers 401; the kiosk links
still open). It exits by itself after ``--max-lifetime`` seconds so an orphan
cannot outlive its test; the test that starts it stops it by its process
group (``browser_support.bridge_app_served``).
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


class CookieViewer:
    """The viewer the browser names in the ``bridge_test_viewer`` cookie (a test stand-in for a login)."""

    async def __call__(self, request: object) -> object:
        from bridge.ui.auth import Viewer

        cookies = getattr(request, "cookies", {})
        return Viewer(str(cookies.get("bridge_test_viewer") or "data-owner"), may_release=False)


class Nobody:
    """No Airflow here: nobody is logged in."""

    async def __call__(self, request: object) -> object:
        from bridge.ui.auth import NotAuthenticated

        raise NotAuthenticated("Not authenticated")


def _viewers() -> object:
    import os

    return CookieViewer() if os.environ.get("BRIDGE_TEST_VIEWER_COOKIE") == "1" else DataOwner()


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from fastapi import FastAPI

    from bridge.ui.app import UiConfig, create_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--max-lifetime", type=float, default=300)
    parser.add_argument("--anonymous", action="store_true")
    args = parser.parse_args(argv)

    parent = FastAPI()
    parent.mount(
        "/bridge",
        create_app(
            UiConfig(
                authenticator=Nobody() if args.anonymous else _viewers(),
                csrf_secret=b"bridge-browser-check",
                hub_url=args.hub_url,
                data_dir=args.data_dir,
            )
        ),
    )
    server = uvicorn.Server(uvicorn.Config(parent, host="127.0.0.1", port=args.port, log_level="warning"))
    timer = threading.Timer(args.max_lifetime, lambda: setattr(server, "should_exit", True))
    timer.daemon = True
    timer.start()
    server.run()


if __name__ == "__main__":
    main()
