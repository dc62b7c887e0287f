"""Serve a simulator's app with uvicorn, the same way for both simulators."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn


def serve(
    app: Any, host: str, port: int, *, log_level: str, max_lifetime: float | None, **options: Any
) -> None:
    """Run ``app`` until stopped; with ``max_lifetime`` (seconds, > 0) an orphaned simulator exits by itself.

    ``options`` are further ``uvicorn.Config`` settings (e.g. ``timeout_keep_alive``).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        **options,
    )
    server = uvicorn.Server(config)
    if max_lifetime and max_lifetime > 0:
        timer = threading.Timer(max_lifetime, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    server.run()
