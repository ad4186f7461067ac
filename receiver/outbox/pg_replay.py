"""Replay on PostgreSQL: the selected events (`PostgresSource`) and the jobs (`PostgresBook`).

The selection is `ReplayFilter`'s, the same fixed SQL fragments with PostgreSQL's numbered
placeholders, so a filter means the same on both engines; the messages are built by the same
`envelope.from_row` (message_id = event id, `x-replay: true`).

Order across replicas: batches are keyset pages on `seq`, as on SQLite. Within one partition
(one stream) seq is committed in order, so a replay publishes each stream in storage order. An
event that another replica commits during the replay with a seq the replay has already passed
is not replayed: it is new, and the outbox relay publishes it anyway.

Jobs live in `replay_jobs`, so a job started through one replica is polled through any other
behind a load balancer, and one job runs at a time across replicas (a partial unique index on
the running job). A replica that dies mid-replay cannot say so: its running job records a
heartbeat with its progress every second (`SAVE_INTERVAL_SECONDS`), and a running job silent for
`STALE_SECONDS` is marked failed by whichever replica looks next, which frees the slot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from receiver.outbox.envelope import COLUMNS, OutboxRow, Outgoing, from_row
from receiver.outbox.replay import ReplayFilter, ReplayProgress
from receiver.outbox.replay_jobs import (
    KEEP_FINISHED,
    JobsUnavailable,
    ReplayBusy,
    ReplayJob,
    job_view,
)
from receiver.storage.postgres.pool import describe_error

if TYPE_CHECKING:
    import asyncpg

    from receiver.storage.postgres.pool import Pooled

# A running job whose replica has recorded nothing for this long is taken for dead. Well above
# the save interval, and above a publish timeout: the heartbeat is written by its own task.
STALE_SECONDS: Final = 30.0
_QUERY_TIMEOUT: Final = 10.0
_PLACEHOLDER: Final = re.compile(r"\?")


def numbered(sql: str, first: int = 1) -> str:
    """SQLite's `?` placeholders as PostgreSQL's `$1, $2, ...` (the fragments are fixed text
    from `EventFilter.conditions`, never values, so every `?` is a placeholder)."""
    counter = iter(range(first, first + sql.count("?")))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _where(selection: ReplayFilter) -> tuple[str, list[object]]:
    where, params = selection.where()
    return ("TRUE" if where == "1" else numbered(where)), params


@dataclass(frozen=True, slots=True)
class PostgresSource:
    """The selected events of the PostgreSQL database, read through the pool."""

    pool: asyncpg.Pool[Any]

    async def count(self, selection: ReplayFilter) -> int:
        where, params = _where(selection)
        sql = f"SELECT count(*) FROM events WHERE {where}"  # noqa: S608 - fixed fragments
        with _unavailable():
            return int(await self.pool.fetchval(sql, *params, timeout=_QUERY_TIMEOUT))

    async def batches(
        self, selection: ReplayFilter, batch_size: int
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        where, params = _where(selection)
        n = len(params)
        sql = (
            f"SELECT {COLUMNS} FROM events WHERE ({where}) AND seq > ${n + 1}"  # noqa: S608
            f" ORDER BY seq LIMIT ${n + 2}"
        )
        after = 0
        while True:
            rows = await self.pool.fetch(sql, *params, after, batch_size, timeout=_QUERY_TIMEOUT)
            if not rows:
                return
            after = rows[-1][0]
            yield [from_row(_row(row), replay=True) for row in rows]


def _row(record: asyncpg.Record) -> OutboxRow:
    return tuple(record)  # the columns of COLUMNS, in order


# Heartbeats are the server's clock (the replicas' clocks may differ).
_EXPIRE: Final = (
    "UPDATE replay_jobs SET state = 'failed', finished_at = heartbeat_at, error = $2"
    " WHERE state = 'running'"
    " AND heartbeat_at < extract(epoch FROM clock_timestamp())::float8 - $1"
)
_RUNNING: Final = "SELECT id FROM replay_jobs WHERE state = 'running'"
_INSERT: Final = (
    "INSERT INTO replay_jobs (id, state, filter, matched, started_at, heartbeat_at)"
    " VALUES ($1, 'running', $2, $3, $4, extract(epoch FROM clock_timestamp())::float8)"
)
_FORGET: Final = (
    "DELETE FROM replay_jobs WHERE state <> 'running' AND id NOT IN (SELECT id FROM replay_jobs"
    " WHERE state <> 'running' ORDER BY started_at DESC LIMIT $1)"
)
_SAVE: Final = (
    "UPDATE replay_jobs SET state = $2, published = $3, unroutable = $4, failed = $5,"
    " finished_at = $6, error = $7, heartbeat_at = extract(epoch FROM clock_timestamp())::float8"
    " WHERE id = $1 AND state = 'running'"  # one declared dead stays so (module doc)
)
_FIND: Final = (
    "SELECT id, state, filter, matched, published, unroutable, failed, started_at,"
    " finished_at, error FROM replay_jobs WHERE id = $1"
)


class PostgresBook:
    """Replay jobs in the `replay_jobs` table, shared by every replica (module doc)."""

    def __init__(self, pool: asyncpg.Pool[Any], *, stale_after: float = STALE_SECONDS) -> None:
        self._pool = pool
        self._stale_after = stale_after

    async def _expire(self, conn: Pooled) -> None:
        """Mark running jobs whose replica stopped recording progress as failed."""
        await conn.execute(
            _EXPIRE,
            self._stale_after,
            f"the replica running it stopped: no progress recorded for {self._stale_after:g} s",
        )

    async def running(self) -> str | None:
        async with self._connection() as conn:
            await self._expire(conn)
            found: str | None = await conn.fetchval(_RUNNING)
            return found

    async def claim(self, job: ReplayJob) -> None:
        import asyncpg

        selection = orjson.dumps(job.selection.describe()).decode()
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    await self._expire(conn)
                    await conn.execute(
                        _INSERT, job.id, selection, job.progress.matched, job.started_at
                    )
            except asyncpg.UniqueViolationError:  # replay_jobs_one_running: another replica's
                raise ReplayBusy(await conn.fetchval(_RUNNING) or "?") from None
            await conn.execute(_FORGET, KEEP_FINISHED)

    async def save(self, job: ReplayJob) -> None:
        p = job.progress
        async with self._connection() as conn:
            await conn.execute(
                _SAVE,
                job.id,
                job.state,
                p.published,
                p.unroutable,
                p.failed,
                job.finished_at,
                job.error,
            )

    async def find(self, job_id: str) -> dict[str, object] | None:
        async with self._connection() as conn:
            await self._expire(conn)
            row = await conn.fetchrow(_FIND, job_id)
        if row is None:
            return None
        progress = ReplayProgress(
            row["matched"], row["published"], row["unroutable"], row["failed"]
        )
        return job_view(
            row["id"],
            row["state"],
            orjson.loads(row["filter"]),
            progress,
            row["started_at"],
            row["finished_at"],
            row["error"],
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Pooled]:
        """A pooled connection for at most `_QUERY_TIMEOUT` seconds of work: a server that stops
        answering must not hold a request, or a finished replay's last save, for ever."""
        with _unavailable():
            async with asyncio.timeout(_QUERY_TIMEOUT), self._pool.acquire() as conn:
                yield conn


@contextmanager
def _unavailable() -> Iterator[None]:
    """Database failures as `JobsUnavailable` (answered 503 naming the database, not 500)."""
    import asyncpg

    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        raise JobsUnavailable(f"PostgreSQL cannot be reached: {describe_error(exc)}") from exc
