"""The outbox relay: publish every stored event to RabbitMQ, oldest first, until none is left.

Events are stored first (the 200 to CSS never waits for the broker) and published afterwards by
this single background task. The fold process wakes it after every fold that stored new events,
so the hot path has no polling delay. One pass (`publish_pending`) reads unpublished rows in `seq`
order in batches (the next batch is read while the current one is being published), publishes
them through the `Publisher` window, and records outcomes through the fold process (the
database's writer):
`published_at` only for messages the broker confirmed (or returned as unroutable), an attempt
and `last_error` for the ones that failed. A pass ends when no unpublished row is left, or at the
first failure, after which the relay backs off (jittered, capped at
`publish_retry_max_seconds`) and starts again from the oldest unpublished event.

Delivery is at-least-once: a crash between a confirm and its mark, or a confirm lost with the
connection, republishes the event with the same message_id. Marks need not be on disk before
the next publish; they must only never come before the confirm, and they never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Literal

import aiosqlite

from receiver.errors import StorageUnavailable
from receiver.outbox import queries as outbox
from receiver.outbox.backoff import Backoff
from receiver.outbox.envelope import Outgoing, from_row
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.publisher import BrokerUnavailable, Outcome, Publisher, Settled, describe
from receiver.storage.fold_worker import FoldWorker, OutboxUpdate

log = logging.getLogger(__name__)

BrokerState = Literal["connected", "disconnected"]


class OutboxRelay:
    """Drains the outbox into the broker; `run()` forever, or `publish_pending()` once."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        reader: aiosqlite.Connection,
        writer: FoldWorker,
        metrics: PublishMetrics,
        clock: Callable[[], float],
        batch_size: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        self._publisher = publisher
        publisher.on_lost = self.wake  # a dropped connection wakes the loop to reconnect
        self._reader = reader
        self._writer = writer
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._marks: list[asyncio.Future[Any]] = []
        self._one_pass = asyncio.Lock()  # run() and a direct caller never publish concurrently
        self._down_since: float | None = None
        self.last_error: str | None = None

    @property
    def state(self) -> BrokerState:
        return "connected" if self._publisher.connected else "disconnected"

    def wake(self) -> None:
        """New events were stored (or the connection dropped): run a pass now."""
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the current pass without starting more sends; `run()` then returns."""
        self._stop.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Publish whenever there is work; back off while the broker is unreachable."""
        while not self._stop.is_set():
            try:
                await self.publish_pending()
            except BrokerUnavailable as exc:
                self._broker_down(exc)
                await self._pause(self._backoff.next_delay())
                continue
            except StorageUnavailable:
                if self._stop.is_set():
                    return
                log.warning("could not record publishing outcomes; retrying")
                await self._pause(self._backoff.next_delay())
                continue
            except Exception:
                # Never let the relay die silently: events would pile up unnoticed.
                log.exception("outbox relay pass failed unexpectedly; retrying")
                await self._publisher.close()
                await self._pause(self._backoff.next_delay())
                continue
            self._backoff.reset()
            if not self._stop.is_set():
                await self._wakeup.wait()

    async def publish_pending(self) -> int:
        """One pass: publish every unpublished event, oldest first; returns how many the broker
        took (confirmed or unroutable). Raises `BrokerUnavailable` at the first failure, after
        recording what was confirmed before it."""
        async with self._one_pass:
            self._wakeup.clear()
            if not self._publisher.connected:
                await self._publisher.connect()
                self._broker_up()
            try:
                summary = await self._publisher.publish(self._unpublished(), self._record)
            finally:
                await self._flush_marks()
            return summary.handled

    async def close(self) -> None:
        """Record what is still pending and close the connection."""
        with contextlib.suppress(StorageUnavailable):  # logged; those events go out again
            await self._flush_marks()
        await self._publisher.close()
        self._metrics.broker_connected.set(0)

    async def _unpublished(self) -> AsyncGenerator[Sequence[Outgoing], None]:
        after = 0
        pending = asyncio.ensure_future(outbox.unpublished(self._reader, after, self._batch_size))
        try:
            while True:
                rows = await pending
                if not rows or self._stop.is_set():
                    return
                after = rows[-1][0]
                if len(rows) < self._batch_size:
                    # That was all there was; events stored since wake the relay for a new pass
                    # (an empty read here would cost a query per commit under steady load).
                    yield [from_row(row) for row in rows]
                    return
                # Read ahead while this batch is being published: keeps the window full.
                pending = asyncio.ensure_future(
                    outbox.unpublished(self._reader, after, self._batch_size)
                )
                yield [from_row(row) for row in rows]
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    def _record(self, settled: Sequence[Settled]) -> None:
        """Queue the outcomes for the next group commit (not awaited: publishing goes on)."""
        now = self._clock()
        published: list[tuple[float, str | None, int]] = []
        failed: list[tuple[str, int]] = []
        for item in settled:
            if item.outcome is Outcome.FAILED:
                failed.append((item.error or "failed", item.message.seq))
            else:
                published.append((now, item.error, item.message.seq))
        confirmed = sum(1 for item in settled if item.outcome is Outcome.CONFIRMED)
        if confirmed:
            self._metrics.published.inc(confirmed)
        self._marks.append(self._writer.update_outbox(OutboxUpdate(published, failed)))

    async def _flush_marks(self) -> None:
        """Wait until every recorded outcome is committed, so the next read sees it."""
        marks, self._marks = self._marks, []
        if not marks:
            return
        results = await asyncio.gather(*marks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # The events stay unpublished and go out again: duplicates, never losses.
            log.error("could not record publishing outcomes: %s", describe(errors[0]))
            raise StorageUnavailable("publishing outcomes could not be recorded")

    def _broker_up(self) -> None:
        self._metrics.broker_connected.set(1)
        if self._down_since is not None:
            log.info(
                "broker %s reachable again after %.1f s; catching up",
                self._publisher.display_url,
                self._clock() - self._down_since,
            )
        else:
            log.info(
                "publishing to %s, exchange %r",
                self._publisher.display_url,
                self._publisher.exchange,
            )
        self._down_since = None
        self.last_error = None

    def _broker_down(self, exc: BrokerUnavailable) -> None:
        self._metrics.broker_connected.set(0)
        self.last_error = str(exc)
        if self._down_since is None:
            self._down_since = self._clock()
            log.warning(
                "%s; events wait in the outbox, retrying with back-off (at most %.0f s apart)",
                exc,
                self._backoff.cap,
            )
        else:
            log.debug("still unavailable: %s", exc)

    async def _pause(self, seconds: float) -> None:
        """Sleep before a retry; `stop()` ends the pause early, new events do not."""
        if self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not self._stop.is_set():
                    self._wakeup.clear()
                    await self._wakeup.wait()
