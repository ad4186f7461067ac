"""The outbox relay on PostgreSQL: each replica publishes the partitions it owns, in storage order.

Ownership (`receiver.storage.postgres.ownership`) gives each partition one owner among the live
replicas; this relay publishes the owned partitions' unpublished events, each partition in seq
order (`receiver.outbox.pg_queries`: one cursor per partition), on one channel with publisher
confirms (`Publisher`, the SQLite relay's), and marks what the broker took. So a stream's events
reach the queue in storage order, whichever replica stored them.

Ownership is rebalanced between passes only, never during one: a partition is released only
once every message of it that was sent is settled and marked, so its next owner never publishes
next to messages still in flight. A pass also stops feeding the publisher as soon as a partition
it reads is no longer owned (the ownership session broke: the database may give it to another
replica at once).

Woken by `NOTIFY receiver_events` (sent by the store transaction), and at least every
`poll_seconds` (a missed notification, a takeover to do). Delivery is at-least-once, as on
SQLite: a re-publish carries the same message_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from receiver.outbox.backoff import Backoff
from receiver.outbox.envelope import Outgoing, from_row
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.pg_queries import mark, start_cursors, unpublished
from receiver.outbox.publisher import BrokerUnavailable, Outcome, Publisher, Settled
from receiver.storage.postgres.ownership import PartitionOwnership
from receiver.storage.postgres.pool import describe_error

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

BrokerState = Literal["connected", "disconnected"]
POLL_SECONDS = 1.0


class PostgresRelay:
    """Publishes the owned partitions; `run()` forever, or `publish_pending()` once."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        pool: asyncpg.Pool[Any],
        ownership: PartitionOwnership,
        metrics: PublishMetrics,
        clock: Callable[[], float],
        batch_size: int = 1000,
        backoff: Backoff | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._publisher = publisher
        publisher.on_lost = self.wake
        self._pool = pool
        self._ownership = ownership
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._poll = poll_seconds
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._published: list[tuple[float, str | None, int]] = []
        self._failed: list[tuple[str, int]] = []
        self._one_pass = asyncio.Lock()
        self.last_error: str | None = None

    @property
    def state(self) -> BrokerState:
        return "connected" if self._publisher.connected else "disconnected"

    @property
    def owned(self) -> frozenset[int]:
        return self._ownership.owned

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.publish_pending()
            except BrokerUnavailable as exc:
                self._metrics.broker_connected.set(0)
                self.last_error = str(exc)
                log.warning("%s; events wait in the outbox", exc)
                await self._pause(self._backoff.next_delay())
                continue
            except Exception as exc:  # the database, or a bug: never die silently
                self.last_error = describe_error(exc)
                log.warning("outbox relay pass failed (%s); retrying", self.last_error)
                await self._pause(self._backoff.next_delay())
                continue
            self._backoff.reset()
            await self._pause(self._poll)

    async def publish_pending(self) -> int:
        """Rebalance, then publish every unpublished event of the owned partitions; returns how
        many the broker took."""
        async with self._one_pass:
            self._wakeup.clear()
            owned = await self._ownership.rebalance()
            if not owned:
                return 0
            if not self._publisher.connected:
                await self._publisher.connect()
                self._metrics.broker_connected.set(1)
                self.last_error = None
            try:
                summary = await self._publisher.publish(
                    self._unpublished(start_cursors(owned)), self._record
                )
            finally:
                await self._flush_marks()
            return summary.handled

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # logged; those events go out again
            await self._flush_marks()
        await self._publisher.close()
        await self._ownership.close()
        self._metrics.broker_connected.set(0)

    async def _unpublished(
        self, cursors: dict[int, int]
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        while not self._stop.is_set():
            if not await self._ownership.confirm(time.monotonic()):
                return  # the session does not answer: another replica may own these soon
            if not cursors.keys() <= self._ownership.owned:
                return  # a partition was lost: send nothing more of it
            async with self._pool.acquire() as conn:
                rows = await unpublished(conn, cursors, self._batch_size)
            if not rows:
                return
            yield [from_row(row) for row in rows]
            if len(rows) < self._batch_size:
                return

    def _record(self, settled: Sequence[Settled]) -> None:
        now = self._clock()
        confirmed = 0
        for item in settled:
            if item.outcome is Outcome.FAILED:
                self._failed.append((item.error or "failed", item.message.seq))
            else:
                self._published.append((now, item.error, item.message.seq))
                confirmed += item.outcome is Outcome.CONFIRMED
        if confirmed:
            self._metrics.published.inc(confirmed)

    async def _flush_marks(self) -> None:
        """Record the outcomes before the next pass reads (it starts from the oldest
        unpublished event of each partition)."""
        published, self._published = self._published, []
        failed, self._failed = self._failed, []
        if not published and not failed:
            return
        async with self._pool.acquire() as conn:
            await mark(conn, published, failed)

    async def _pause(self, seconds: float) -> None:
        if self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
