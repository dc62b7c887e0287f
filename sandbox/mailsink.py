"""A local SMTP server that keeps every message it receives as an .eml file.

Stands in for the company's mail server in the demo, ``make airflow`` and
tests: the report and data-health notices really go out over SMTP and can be
opened afterwards. ``python -m sandbox.mailsink --port P --dir D``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _SaveHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}.eml"
        raw = envelope.original_content or envelope.content
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        (self.folder / name).write_bytes(header + raw)
        return "250 Message accepted for delivery"


def start(folder: Path, port: int = 0) -> Controller:
    """Start in this process (tests); returns the controller (``.port``, ``.stop()``)."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
    from sandbox.launcher import free_port

    controller = Controller(_SaveHandler(folder), hostname="127.0.0.1", port=port or free_port())
    controller.start()
    return controller


def read_mailbox(folder: Path) -> list[Any]:
    """Parsed messages in arrival order."""
    parser = BytesParser(policy=default_policy)
    return [parser.parsebytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.mailsink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--max-lifetime", type=int, default=3600)
    args = parser.parse_args(argv)
    controller = Controller(_SaveHandler(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        asyncio.run(asyncio.sleep(args.max_lifetime))
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
