"""`receiver migrate`: apply pending SQL migrations explicitly (serve also does it at start).

It takes the same path as `serve` (lock, start-up check, migrations, marker), so it refuses a
database another service is writing, or one that was lost, exactly as `serve` would."""

from __future__ import annotations

import argparse
import asyncio
import sys

from receiver.cli.common import add_database_option, configure_logging, load_settings
from receiver.errors import StartupError
from receiver.storage.context import prepare_database


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("migrate", help="apply pending database migrations")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def migrate() -> int:
        try:
            lock, applied = await prepare_database(
                settings.database, settings.startup_check_seconds
            )
        except StartupError as refused:
            print(f"receiver migrate: {refused.message}", file=sys.stderr)
            return 2
        lock.release()
        if applied:
            for migration in applied:
                print(f"applied {migration.version:04d}_{migration.name}")
        else:
            print(f"{settings.database}: up to date")
        return 0

    return asyncio.run(migrate())
