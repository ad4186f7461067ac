"""Where the executor finds its actions and records its reports, on each engine.

SQLite has one service per database, so one executor: it reads the open actions and records its
reports through the fold process, the database's writer (`FoldActions`).

On PostgreSQL every replica runs an executor over the same table (`PgActions`), and each action
must still be carried out once. An executor works on an action only under a **lease**: a
conditional UPDATE takes it (`claimed_by`, `lease_until` in the database's clock) only if no
other executor holds an unexpired lease, and only if the action is as the executor read it
(state and attempts: nobody moved it meanwhile). The holder renews the lease while it works;
its `calling` report, committed before the request leaves, is fenced on still holding it, so
an executor whose lease was taken over never sends. A replica that dies (or loses the
database) stops renewing: after `LEASE_SECONDS` another replica takes the action over, and
finds it `pending` (calls it) or `calling` (looks whether the call took effect first, as after
a restart on SQLite). An action sent back to `pending` after a failure that changed nothing
keeps its holder's lease until it runs out, so the other replicas wait too (a back-off across
replicas). Rates: each replica's client keeps its own per-action token buckets;
`RECEIVER_TENCENT_RATE_SHARE` divides them between replicas (receiver/tencent/limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiosqlite

from receiver.moderation.book import COLUMNS, ActionMark, ActionRow
from receiver.moderation.pg_book import PgActionBook, StoreRows
from receiver.storage.fold_worker import FoldWorker

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("receiver.moderation")

# How long a lease lasts without renewal: how long a dead replica's action waits for another.
LEASE_SECONDS: Final = 15.0
# The holder renews at this fraction of the lease (twice more chances before it runs out).
_RENEW_SHARE: Final = 1 / 3
_OPEN: Final = (
    f"SELECT {COLUMNS} FROM moderation_actions"  # noqa: S608 - constant column list
    " WHERE state IN ('pending', 'calling') AND action IN ('drop', 'forbid')"
)
_SUMMARY: Final = (
    "SELECT count(*), min(created_at) FROM moderation_actions"
    " WHERE state IN ('pending', 'calling') AND action IN ('drop', 'forbid')"
)
_DB_NOW: Final = "extract(epoch FROM clock_timestamp())::float8"
_FREE: Final = f"(lease_until IS NULL OR lease_until < {_DB_NOW} OR claimed_by = $1)"
_PG_OPEN: Final = f"{_OPEN} AND {_FREE} ORDER BY id LIMIT $2"
_TAKE: Final = (
    f"UPDATE moderation_actions SET claimed_by = $1, lease_until = {_DB_NOW} + $2"  # noqa: S608
    f" WHERE id = $3 AND state = $4 AND attempts = $5 AND {_FREE} RETURNING id"
)
_RENEW: Final = (
    f"UPDATE moderation_actions SET lease_until = {_DB_NOW} + $2"  # noqa: S608
    " WHERE id = $3 AND claimed_by = $1"
)
# `receiver.moderation.book.MARKS["calling"]`, fenced on the lease and renewing it.
_CALLING: Final = (
    "UPDATE moderation_actions SET state = 'calling', attempts = attempts + 1, called_at = $3,"  # noqa: S608
    f" lease_until = {_DB_NOW} + $2 WHERE id = $4 AND state IN ('pending', 'calling')"
    " AND claimed_by = $1 RETURNING id"
)


class ActionStore(Protocol):
    """The executor's view of the action table."""

    async def open_actions(self, limit: int) -> list[ActionRow]:
        """Open drops and forbids this executor may take, oldest first."""
        ...

    def working(self, row: ActionRow) -> AbstractAsyncContextManager[bool]:
        """While entered: whether this executor may work on `row` now (False: another has it)."""
        ...

    async def mark(self, mark: ActionMark) -> bool:
        """Record a report once committed; False when a `calling` report was refused (the
        action is no longer this executor's: it must not call)."""
        ...

    async def summary(self) -> tuple[int, float | None]:
        """Open actions and the oldest one's creation time (readiness)."""
        ...


class FoldActions:
    """SQLite: the service's read connection and the fold process (one executor)."""

    def __init__(self, reader: aiosqlite.Connection, folder: FoldWorker) -> None:
        self._reader = reader
        self._folder = folder

    async def open_actions(self, limit: int) -> list[ActionRow]:
        async with self._reader.execute(f"{_OPEN} ORDER BY id LIMIT ?", (limit,)) as cursor:
            return [ActionRow(*row) for row in await cursor.fetchall()]

    @contextlib.asynccontextmanager
    async def working(self, row: ActionRow) -> AsyncIterator[bool]:
        yield True  # the only executor of its database

    async def mark(self, mark: ActionMark) -> bool:
        await self._folder.mark_actions([(mark.action, mark.state, mark.at, mark.result)])
        return True

    async def summary(self) -> tuple[int, float | None]:
        async with self._reader.execute(_SUMMARY) as cursor:
            row = await cursor.fetchone()
        return (row[0], row[1]) if row is not None else (0, None)


class PgActions:
    """PostgreSQL: one of several executors over the same table, each action under a lease."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        book: PgActionBook,
        store_rows: StoreRows,
        *,
        lease_seconds: float = LEASE_SECONDS,
        owner: str | None = None,
    ) -> None:
        self._pool = pool
        self._book = book
        self._store_rows = store_rows
        self._lease = lease_seconds
        self.owner = owner or uuid.uuid4().hex  # this executor, in `claimed_by`

    async def open_actions(self, limit: int) -> list[ActionRow]:
        rows = await self._pool.fetch(_PG_OPEN, self.owner, limit)
        return [ActionRow(*row) for row in rows]

    @contextlib.asynccontextmanager
    async def working(self, row: ActionRow) -> AsyncIterator[bool]:
        taken = await self._pool.fetchval(
            _TAKE, self.owner, self._lease, row.id, row.state, row.attempts
        )
        if taken is None:
            yield False
            return
        renewing = asyncio.create_task(self._renew(row.id), name="moderation-lease")
        try:
            yield True
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, action: int) -> None:
        while True:
            await asyncio.sleep(self._lease * _RENEW_SHARE)
            try:
                await self._pool.execute(_RENEW, self.owner, self._lease, action)
            except Exception as exc:  # the database is away: the lease may run out
                log.warning("moderation: cannot renew the lease of action %d: %s", action, exc)

    async def mark(self, mark: ActionMark) -> bool:
        if mark.state == "calling":
            fenced = await self._pool.fetchval(
                _CALLING, self.owner, self._lease, mark.at, mark.action
            )
            return fenced is not None
        async with self._pool.acquire() as conn:
            await self._book.apply(conn, mark, self._store_rows)
        return True

    async def summary(self) -> tuple[int, float | None]:
        row = await self._pool.fetchrow(_SUMMARY)
        return (row[0], row[1]) if row is not None else (0, None)
