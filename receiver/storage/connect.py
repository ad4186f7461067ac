"""Opening the SQLite database the way every part of the service needs it.

WAL lets history readers run while the writer commits; `synchronous=FULL` makes every commit
reach the disk before it returns, which is what lets us answer 200 only for events on disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

# How long a connection waits for another writer (a CLI migrate, a second process) before failing.
BUSY_TIMEOUT_MS = 5000


async def connect(path: Path, *, readonly: bool = False) -> aiosqlite.Connection:
    """Open `path` in WAL mode with full durability; explicit transactions only."""
    conn = await aiosqlite.connect(_target(path, readonly), uri=readonly, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


def _target(path: Path, readonly: bool) -> str:
    if readonly:
        return f"{path.absolute().as_uri()}?mode=ro"
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)
