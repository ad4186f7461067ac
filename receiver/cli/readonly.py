"""Reading the database from the command line: read-only, no token, no running server needed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from receiver.storage.connect import connect
from receiver.storage.engine import PostgresUrl
from receiver.storage.migrations import load_migrations

if TYPE_CHECKING:
    import asyncpg


class CommandError(Exception):
    """A problem to report in one line on stderr, with the exit code to end with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@asynccontextmanager
async def open_readonly(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """The database at `path`, opened read-only and checked to have every migration applied."""
    if not await asyncio.to_thread(path.is_file):
        raise CommandError(f"no database at {path} (set RECEIVER_DATABASE or use --database)")
    try:
        conn = await connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise CommandError(f"cannot open {path}: {exc}") from None
    try:
        await _check_schema(conn, path)
        yield conn
    finally:
        await conn.close()


async def _check_schema(conn: aiosqlite.Connection, path: Path) -> None:
    latest = load_migrations()[-1].version
    try:
        rows = await conn.execute_fetchall("SELECT max(version) FROM schema_migrations")
        version = next(iter(rows))[0] or 0
    except sqlite3.Error:
        version = 0
    if version < latest:
        raise CommandError(
            f"{path} has schema version {version}, this receiver needs {latest}: "
            "run `receiver migrate` (or restart `receiver serve`)"
        )


@asynccontextmanager
async def open_postgres(url: PostgresUrl) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A small pool on the PostgreSQL database, checked to have every migration applied. Only
    reads: no durability check, which is `serve`'s business."""
    import asyncpg

    from receiver.storage.postgres.migrations import postgres_migrations
    from receiver.storage.postgres.pool import describe_error

    try:
        pool = await asyncpg.create_pool(url.dsn(), min_size=1, max_size=2, timeout=10)
    except Exception as exc:
        raise CommandError(
            f"cannot connect to PostgreSQL at {url.masked}: {describe_error(exc)}"
        ) from None
    try:
        latest = postgres_migrations()[-1].version
        try:
            version = await pool.fetchval("SELECT max(version) FROM schema_migrations") or 0
        except asyncpg.UndefinedTableError:
            version = 0
        if version < latest:
            raise CommandError(
                f"{url.masked} has schema version {version}, this receiver needs {latest}: "
                "run `receiver migrate` (or start `receiver serve`)"
            )
        yield pool
    finally:
        await pool.close()
