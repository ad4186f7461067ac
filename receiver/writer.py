"""Group commit: one task owns every write, so durability costs an fsync per batch, not per request.

Requests queue their row and wait. The writer takes everything that queued while the previous
commit was running, inserts it in one transaction, commits (an fsync under `synchronous=FULL`),
then tells each waiting request whether its event was new or a duplicate. There is no batching
window: an idle writer commits a lone request at once, a busy one batches naturally.

If a batch fails, its rows are retried one by one so that one poisoned row cannot fail its
neighbours; a row that still fails gets `StorageUnavailable` (HTTP 503, so CSS retries).

The outbox relay records publishing outcomes (`update_outbox`) through the same queue: SQLite has
one writer, and a second writing connection would contend with the request path for the lock.
Those updates ride along with the next group commit and do not wake the relay again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiosqlite

from receiver.errors import StorageUnavailable
from receiver.store import INSERT_EVENT, EventRow

log = logging.getLogger(__name__)

_ID_CHUNK: Final = 500  # stay far below SQLite's bound-parameter limit
_HEARTBEAT: Final = (
    "INSERT INTO service_state (key, value) VALUES ('heartbeat', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


_MARK_PUBLISHED: Final = (
    "UPDATE events SET published_at = ?, last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ?"
)
_MARK_FAILED: Final = (
    "UPDATE events SET last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ? AND published_at IS NULL"
)


@dataclass(frozen=True, slots=True)
class OutboxUpdate:
    """Publishing outcomes to record, by `seq`.

    `published`: (published_at, last_error, seq): the broker confirmed the message (or returned
    it as unroutable, with last_error 'unroutable'). `failed`: (last_error, seq): an attempt that
    was not confirmed; the row stays unpublished and is retried.
    """

    published: Sequence[tuple[float, str | None, int]] = ()
    failed: Sequence[tuple[str, int]] = ()


@dataclass(slots=True)
class _Item:
    # None: a readiness probe, which writes the heartbeat instead
    row: EventRow | OutboxUpdate | None
    future: asyncio.Future[bool]


@dataclass(slots=True)
class WriterStats:
    """Counters for tests and metrics: how many transactions carried how many rows."""

    transactions: int = 0
    rows_inserted: int = 0
    duplicates: int = 0
    failures: int = 0
    largest_batch: int = 0


CommitObserver = Callable[[float, int], None]  # (seconds, batch size)


class GroupCommitWriter:
    """The single writer of `events`. `submit()` returns once the row is on disk."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        max_batch: int = 1000,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._pending: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._listeners: list[Callable[[], None]] = []
        self.stats = WriterStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-writer")

    async def close(self) -> None:
        """Refuse new rows, commit everything already queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every commit that stored new events (the outbox wakes on it)."""
        self._listeners.append(callback)

    async def submit(self, row: EventRow) -> bool:
        """Store `row`; True if it is new, False if an identical event was already stored."""
        return await self._enqueue(row)

    async def probe(self) -> None:
        """Commit a heartbeat through the same path as events: proves the database is writable."""
        await self._enqueue(None)

    def update_outbox(self, update: OutboxUpdate) -> asyncio.Future[bool]:
        """Queue publishing outcomes for the next commit; the future resolves once committed.

        Not a coroutine on purpose: the relay keeps publishing while its marks wait for the
        commit, and awaits the futures only before it reads the outbox again.
        """
        return self._queue(update)

    async def _enqueue(self, row: EventRow | None) -> bool:
        return await self._queue(row)

    def _queue(self, row: EventRow | OutboxUpdate | None) -> asyncio.Future[bool]:
        if self._closing or self._task is None or self._task.done():
            raise StorageUnavailable("the service is shutting down; retry later")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(row, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            inserted = await self._commit(batch)
        except Exception as exc:
            self.stats.failures += 1
            if len(batch) > 1:
                log.warning("commit of %d events failed (%s); retrying one by one", len(batch), exc)
                for item in batch:
                    await self._write([item])
                return
            log.error("could not store event: %s", exc)
            _settle(batch[0], exc=StorageUnavailable())
            return
        elapsed = time.perf_counter() - started
        self.stats.transactions += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        if self._on_commit is not None:
            self._on_commit(elapsed, len(batch))
        new = 0
        for item in batch:
            is_new = True  # probes and outbox updates simply succeeded
            if isinstance(item.row, EventRow):
                is_new = item.row.id in inserted
                new += is_new
                self.stats.duplicates += not is_new
            _settle(item, result=is_new)
        self.stats.rows_inserted += new
        if new:
            for listener in self._listeners:
                listener()

    async def _commit(self, batch: list[_Item]) -> set[str]:
        rows = [item.row for item in batch if isinstance(item.row, EventRow)]
        updates = [item.row for item in batch if isinstance(item.row, OutboxUpdate)]
        conn = self._conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            inserted: set[str] = set()
            if rows:
                await conn.executemany(INSERT_EVENT, [row.params() for row in rows])
                ids = [row.id for row in rows]
                for start in range(0, len(ids), _ID_CHUNK):
                    chunk = ids[start : start + _ID_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    found = await conn.execute_fetchall(
                        f"SELECT id FROM events WHERE id IN ({marks})",  # noqa: S608 # only "?"s
                        chunk,
                    )
                    inserted.update(r[0] for r in found)
            published = [mark for update in updates for mark in update.published]
            if published:
                await conn.executemany(_MARK_PUBLISHED, published)
            failed = [mark for update in updates for mark in update.failed]
            if failed:
                await conn.executemany(_MARK_FAILED, failed)
            if any(item.row is None for item in batch):
                await conn.execute(_HEARTBEAT, (str(time.time()),))
            await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        return inserted


def _settle(item: _Item, *, result: bool = False, exc: BaseException | None = None) -> None:
    # The waiting request may have gone (client disconnected); its row is stored regardless.
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
    else:
        item.future.set_result(result)
