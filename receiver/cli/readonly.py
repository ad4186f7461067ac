"""Reading the database from the command line: read-only, no token, no running server needed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from receiver.storage.connect import connect
from receiver.storage.migrations import load_migrations


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
