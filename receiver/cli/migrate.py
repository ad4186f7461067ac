"""`receiver migrate`: apply pending SQL migrations explicitly (serve also does it at start).

On SQLite it takes the same path as `serve` (lock, start-up check, migrations, marker), so it
refuses a database another service is writing, or one that was lost, exactly as `serve` would.
On PostgreSQL it connects, checks durability and migrates under the advisory lock, as `serve`
does: replicas running meanwhile are not disturbed."""

from __future__ import annotations

import argparse
import asyncio
import sys

from receiver.cli.common import add_database_option, configure_logging, load_settings
from receiver.errors import StartupError
from receiver.storage.context import prepare_database
from receiver.storage.engine import PostgresUrl, describe
from receiver.storage.migrations import Migration


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("migrate", help="apply pending database migrations")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    database = settings.database

    async def migrate() -> list[Migration]:
        if isinstance(database, PostgresUrl):
            from receiver.storage.postgres.context import prepare_postgres

            pool, applied = await prepare_postgres(database)
            await pool.close()
            return applied
        lock, applied = await prepare_database(database, settings.startup_check_seconds)
        lock.release()
        return applied

    try:
        applied = asyncio.run(migrate())
    except StartupError as refused:
        print(f"receiver migrate: {refused.message}", file=sys.stderr)
        return 2
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
    else:
        print(f"{describe(database)}: up to date")
    return 0
