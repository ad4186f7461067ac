"""Test-side PostgreSQL helpers: a fresh database per test, and reading it back."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from typing import Any

import asyncpg

from receiver.storage.engine import Database, PostgresUrl
from testbed.postgres import PostgresCluster
from tests.support.helpers import rows


def psql(cluster: PostgresCluster, sql: str, database: str = "postgres") -> str:
    """Run one statement as the superuser; its output (unaligned, tuples only)."""
    done = subprocess.run(
        [str(cluster.bin / "psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
         cluster.url_for(database), "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    return done.stdout.strip()


def create_database(cluster: PostgresCluster, name: str) -> str:
    """An empty database (from template0: nothing a previous test left); its URL."""
    psql(cluster, f'CREATE DATABASE "{name}" TEMPLATE template0')
    return cluster.url_for(name)


def drop_database(cluster: PostgresCluster, name: str) -> None:
    if cluster.running:
        psql(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one query on its own connection (what another client would see)."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def stored_events(database: Database, where: str = "TRUE") -> list[Any]:
    """Stored events in storage order, read as an operator would, on either engine (on SQLite
    once every acknowledged callback is folded)."""
    if isinstance(database, PostgresUrl):
        return list(
            await fetch(database.dsn(), f"SELECT * FROM events WHERE {where} ORDER BY seq")  # noqa: S608
        )
    return await asyncio.to_thread(rows, database, where)


async def execute(database: Database, sql: str) -> None:
    """Run one statement without parameters on either engine (as an operator would)."""
    if isinstance(database, PostgresUrl):
        conn = await asyncpg.connect(database.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return
    conn_lite = sqlite3.connect(database)
    try:
        with conn_lite:
            conn_lite.execute(sql)
    finally:
        conn_lite.close()
