"""The ``bridge`` command line: dictionary, quarantine, audit and xref tools.

Each area registers its subcommands in a ``cli_*`` module; this module only
assembles them. Exit codes: 0 ok, 1 a check failed (e.g. the audit chain is
broken), 2 a usage or input error; messages say what to do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from bridge import cli_dictionary, cli_events, cli_hub, cli_kiosk

    parser = argparse.ArgumentParser(prog="bridge", description="OA ⇄ CRM bridge tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_dictionary.register(sub)
    cli_hub.register(sub)
    cli_kiosk.register(sub)
    cli_events.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
