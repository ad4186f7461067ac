"""Opening the SQLite database the way every part of the service needs it.

WAL lets history readers run while the writer commits; `synchronous=FULL` makes every commit
reach the disk before it returns, which is what lets us answer 200 only for events on disk.
"""

from __future__ import annotations

import os
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


def open_for_writing(path: Path) -> sqlite3.Connection:
    """Open an existing database file for writing (a storage process's own), or fail: never
    silently read-only.

    When it cannot open the database or its WAL for writing (read-only file or mount), SQLite
    falls back to a read-only connection, even with `mode=rw`; such a writer would refuse every
    write forever, also after the disk recovered. So check first, and fail: the service restarts
    the process (503 meanwhile) until the files are writable again.
    """
    for name in (path, path.with_name(path.name + "-wal")):
        if name.exists():
            os.close(os.open(name, os.O_RDWR))  # PermissionError / EROFS while read-only
    uri = f"{path.absolute().as_uri()}?mode=rw"  # never create an empty database here
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn
