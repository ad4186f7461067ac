"""The `receiver` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from receiver import __version__
from receiver.cli import (
    actions,
    backup,
    consume,
    events,
    migrate,
    replay,
    serve,
    streams,
    tencent,
)
from receiver.errors import StartupError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="receiver",
        description="Receive, verify, store and publish Tencent Cloud CSS event callbacks.",
    )
    parser.add_argument("--version", action="version", version=f"receiver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, migrate, events, streams, actions, replay, consume, tencent, backup):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except StartupError as refused:  # one line for the operator, never a traceback
        print(f"error: {refused.message}", file=sys.stderr)
        return 2
    return code
