"""Migrations on PostgreSQL: the numbered files in `migrations/postgresql/`, applied once each.

Several replicas may start at once: a session-level advisory lock lets one of them migrate while
the others wait, then find nothing left to do. Each file is applied in one transaction with its
row in `schema_migrations` (PostgreSQL's DDL is transactional), so a failure leaves the schema
as it was.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

from receiver.storage.migrations import Migration, load_migrations, migrations_dir

if TYPE_CHECKING:
    from receiver.storage.postgres.pool import Connection

log = logging.getLogger(__name__)

# pg_advisory_lock key of the migration runner: "rcvr" + 1, fixed for every version.
MIGRATION_LOCK: Final = 0x72637672_00000001


def postgres_migrations() -> list[Migration]:
    return load_migrations(migrations_dir() / "postgresql")


async def apply_migrations(conn: Connection) -> list[Migration]:
    """Apply every pending migration under the migration lock; returns those applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[Migration] = []
        for migration in postgres_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)  # no arguments: the whole script at once
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    time.time(),
                )
            log.info("applied migration postgresql/%04d_%s", migration.version, migration.name)
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
