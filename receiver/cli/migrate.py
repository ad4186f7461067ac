"""`receiver migrate`: apply pending SQL migrations explicitly (serve also does it at start)."""

from __future__ import annotations

import argparse
import asyncio

from receiver.cli.common import add_database_option, configure_logging, load_settings
from receiver.storage.connect import connect
from receiver.storage.migrations import apply_migrations


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("migrate", help="apply pending database migrations")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def migrate() -> int:
        conn = await connect(settings.database)
        try:
            applied = await apply_migrations(conn)
        finally:
            await conn.close()
        if applied:
            for migration in applied:
                print(f"applied {migration.version:04d}_{migration.name}")
        else:
            print(f"{settings.database}: up to date")
        return 0

    return asyncio.run(migrate())
