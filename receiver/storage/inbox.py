"""Reading the inbox: how far the fold is behind, and a callback not folded yet.

Reads go through the service's WAL reader connection, with the inbox file attached to it; the
rows the fold is past (`fold_progress`) wait there only to be deleted, so they do not count.
The processes' own statements live with them (`receiver.storage.writer_process`,
`receiver.storage.fold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiosqlite

from receiver.storage.inbox_file import ATTACHED, inbox_path

_UNFOLDED: Final = (
    f"FROM {ATTACHED}.inbox WHERE seq > (SELECT inbox_seq FROM main.fold_progress WHERE id = 1)"  # noqa: S608
)
_BACKLOG: Final = f"SELECT count(*) {_UNFOLDED}"
_OLDEST: Final = f"SELECT received_at {_UNFOLDED} ORDER BY seq LIMIT 1"
_BY_ID: Final = f"SELECT seq {_UNFOLDED} AND id = ?"
_REJECTED: Final = "SELECT count(*) FROM fold_rejects"


@dataclass(frozen=True, slots=True)
class Backlog:
    """Work waiting for a stage (the fold, the relay): how much, and since when."""

    count: int
    oldest_received_at: float | None

    def oldest_age(self, now: float) -> float | None:
        if self.oldest_received_at is None:
            return None
        return max(0.0, now - self.oldest_received_at)


@dataclass(frozen=True, slots=True)
class FoldBacklog(Backlog):
    rejected: int = 0  # callbacks the database refused to store as events (fold_rejects)


def rejected_note(count: int) -> str:
    """What `/readyz` says while `fold_rejects` holds rows (on either engine)."""
    return (
        f"{count} acknowledged callback(s) could not be stored as events; "
        "their bodies are kept in the fold_rejects table (docs/guarantees.md)"
    )


async def attach_inbox(conn: aiosqlite.Connection, database: Path) -> None:
    """Make the inbox file of `database` readable on `conn` (as `inbox_file`)."""
    await conn.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (str(inbox_path(database)),))


async def fold_backlog(conn: aiosqlite.Connection) -> FoldBacklog:
    """How many acknowledged callbacks wait for the fold, when the oldest arrived, and how
    many the database refused."""
    async with conn.execute(_REJECTED) as cursor:
        refused = await cursor.fetchone()
    rejected = int(refused[0]) if refused is not None else 0
    async with conn.execute(_OLDEST) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return FoldBacklog(0, None, rejected)
    async with conn.execute(_BACKLOG) as cursor:
        counted = await cursor.fetchone()
    return FoldBacklog(int(counted[0]) if counted is not None else 0, float(row[0]), rejected)


async def unfolded_seq(conn: aiosqlite.Connection, event_id: str) -> int | None:
    """The inbox position of an acknowledged callback not folded yet; None if not there."""
    async with conn.execute(_BY_ID, (event_id,)) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else None
