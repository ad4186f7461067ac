"""Reading the outbox: unpublished events in storage order, and how far behind publishing is.

Reads go through a WAL reader connection, never the writer, so they never wait for a commit.
Rows come back as plain tuples (see `envelope.OutboxRow`): the relay reads thousands per second
and builds its messages straight from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import aiosqlite

from receiver.outbox.envelope import COLUMNS, OutboxRow
from receiver.storage.inbox import Backlog

# Uses the partial index events_unpublished (seq WHERE published_at IS NULL): published rows
# are never scanned, however many there are.
_UNPUBLISHED: Final = (
    f"SELECT {COLUMNS} FROM events"  # noqa: S608 - constant column list
    " WHERE published_at IS NULL AND seq > ? ORDER BY seq LIMIT ?"
)
_BACKLOG: Final = "SELECT count(*) FROM events WHERE published_at IS NULL"
_OLDEST: Final = "SELECT received_at FROM events WHERE published_at IS NULL ORDER BY seq LIMIT 1"


async def fetch_tuples(
    conn: aiosqlite.Connection, sql: str, params: Sequence[object]
) -> list[OutboxRow]:
    """Run `sql` (selecting `COLUMNS`) and return plain tuples, whatever the row factory.

    A connection without a row factory (the relay's own) takes one round trip to aiosqlite's
    thread instead of three (execute, fetch, close): the relay reads after every commit.
    """
    if conn.row_factory is None:
        return cast(list[OutboxRow], await conn.execute_fetchall(sql, params))
    async with conn.execute(sql, params) as cursor:
        cursor.row_factory = None
        rows = await cursor.fetchall()
    return cast(list[OutboxRow], rows)


async def unpublished(conn: aiosqlite.Connection, after_seq: int, limit: int) -> list[OutboxRow]:
    """Up to `limit` unpublished events with `seq > after_seq`, oldest first."""
    return await fetch_tuples(conn, _UNPUBLISHED, (after_seq, limit))


async def backlog(conn: aiosqlite.Connection) -> Backlog:
    """How many events wait for the broker, and when the oldest of them arrived."""
    async with conn.execute(_BACKLOG) as cursor:
        row = await cursor.fetchone()
    count = int(row[0]) if row is not None else 0
    if count == 0:
        return Backlog(0, None)
    async with conn.execute(_OLDEST) as cursor:
        row = await cursor.fetchone()
    return Backlog(count, float(row[0]) if row is not None else None)
