"""A small runner for the numbered SQL files in `migrations/`.

Each file `NNNN_name.sql` is applied once, in order, inside one transaction together with its
row in `schema_migrations`, so a crash mid-migration leaves the database as it was. The files are
read from the installed package (the wheel maps `migrations/` into `receiver/migrations`) or,
in a source checkout, from the top-level `migrations/` directory.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_dir() -> Traversable:
    """Where the SQL files are: inside the installed package, else the source checkout."""
    packaged = resources.files("receiver") / "migrations"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / "migrations"
    if source.is_dir():
        return source
    raise FileNotFoundError(
        "no migrations found: expected receiver/migrations in the installed package "
        "or migrations/ next to the receiver package"
    )


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """All migrations in version order; refuses gaps and duplicate numbers."""
    directory = directory or migrations_dir()
    found: list[Migration] = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {expected:04d} is missing (found {migration.version})")
    return found


async def apply_migrations(conn: aiosqlite.Connection) -> list[Migration]:
    """Apply every pending migration; returns the ones applied now."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied: list[Migration] = []
    for migration in load_migrations():
        # BEGIN IMMEDIATE takes the write lock first, so two processes starting at once
        # cannot both apply the same file.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ) as cursor:
                done = await cursor.fetchone() is not None
            if not done:
                for statement in _statements(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        if not done:
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (executescript would commit on its own)."""
    statements: list[str] = []
    current = ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current)
            current = ""
    if current.strip() and not _only_comments(current):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {current!r}")
    return [s for s in statements if not _only_comments(s)]


def _only_comments(sql: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in sql.splitlines())
