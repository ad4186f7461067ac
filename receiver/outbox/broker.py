"""The broker cleanup context: outbox relay task, backlog monitor, readiness check, replay jobs.

Appended after the storage context, so on shutdown it stops first: the relay finishes its pass
(in-flight confirms are recorded through the writer, which is still running), then the storage
context flushes the writer and closes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosqlite
from aiohttp import web

from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS
from receiver.outbox import queries as outbox
from receiver.outbox.backoff import Backoff
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.publisher import Publisher, describe, mask_url
from receiver.outbox.relay import OutboxRelay
from receiver.outbox.replay import SqliteSource
from receiver.outbox.replay_jobs import MemoryBook, ReplayJobs
from receiver.settings import Settings
from receiver.storage.connect import connect
from receiver.storage.context import FOLDER, READER
from receiver.storage.engine import sqlite_path

log = logging.getLogger(__name__)

PUBLISH_METRICS = web.AppKey("publish_metrics", PublishMetrics)
# Only present when RECEIVER_AMQP_URL is set (publishing on).
RELAY = web.AppKey("relay", OutboxRelay)
REPLAY_JOBS = web.AppKey("replay_jobs", ReplayJobs)

_BACKLOG_QUERY_TIMEOUT = 5.0


def make_publisher(
    settings: Settings,
    metrics: PublishMetrics | None,
    *,
    name: str,
) -> Publisher:
    """A publisher configured from settings (which must have an AMQP URL)."""
    if settings.amqp_url is None:
        raise ValueError("publishing is off: RECEIVER_AMQP_URL is not set")
    return Publisher(
        settings.amqp_url.get_secret_value(),
        settings.amqp_exchange,
        in_flight=settings.publish_in_flight,
        timeout=settings.publish_timeout_seconds,
        metrics=metrics,
        connection_name=name,
    )


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    clock = app[CLOCK]
    metrics = PublishMetrics.create(app[METRICS].registry, clock)
    app[PUBLISH_METRICS] = metrics
    reader = app[READER]
    relay: OutboxRelay | None = None
    relay_reader: aiosqlite.Connection | None = None
    relay_task: asyncio.Task[None] | None = None
    if settings.amqp_url is not None:
        relay_reader = await connect(sqlite_path(settings.database), readonly=True)
        relay_reader.row_factory = None  # plain tuples, read in one round trip (fetch_tuples)
        relay = OutboxRelay(
            publisher=make_publisher(settings, metrics, name="receiver outbox"),
            reader=relay_reader,
            writer=app[FOLDER],
            metrics=metrics,
            clock=clock,
            batch_size=settings.publish_batch,
            backoff=Backoff(cap=settings.publish_retry_max_seconds),
        )
        app[FOLDER].add_listener(relay.wake)
        app[RELAY] = relay
        app[REPLAY_JOBS] = ReplayJobs(
            SqliteSource(reader),
            MemoryBook(),  # one service per SQLite database: its memory is the whole truth
            lambda: make_publisher(settings, metrics, name="receiver replay"),
            metrics,
            clock,
        )
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
    else:
        log.warning("RECEIVER_AMQP_URL is not set: publishing is off, events wait in the outbox")
    app[HEALTH_CHECKS]["broker"] = lambda: check_broker(settings, relay, reader, metrics, clock)
    monitor = asyncio.create_task(
        _monitor(reader, metrics, settings.outbox_stats_interval_seconds), name="outbox-monitor"
    )
    try:
        yield
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        if REPLAY_JOBS in app:
            await app[REPLAY_JOBS].close()
        if relay is not None and relay_task is not None:
            relay.stop()
            try:
                await asyncio.wait_for(relay_task, timeout=settings.publish_timeout_seconds + 5)
            except TimeoutError:
                log.warning("the outbox relay did not stop in time; cancelled it")
            except Exception:
                log.exception("the outbox relay failed while stopping")
            await relay.close()
        if relay_reader is not None:
            await relay_reader.close()


async def check_broker(
    settings: Settings,
    relay: OutboxRelay | None,
    reader: aiosqlite.Connection,
    metrics: PublishMetrics,
    clock: Callable[[], float],
) -> ComponentCheck:
    """`degraded` while the broker is unreachable (callbacks are still stored), else `ok`."""
    state = relay.state if relay is not None else "disabled"
    details: dict[str, Any] = {
        "state": state,
        "backlog": None,
        "oldest_unpublished_age_seconds": None,
        "exchange": settings.amqp_exchange,
    }
    if settings.amqp_url is not None:
        details["url"] = mask_url(settings.amqp_url.get_secret_value())
    if relay is not None and state == "disconnected" and relay.last_error:
        details["last_error"] = relay.last_error
    try:
        async with asyncio.timeout(_BACKLOG_QUERY_TIMEOUT):
            backlog = await outbox.backlog(reader)
    except Exception as exc:
        details["error"] = f"backlog query failed: {describe(exc)}"
        return ComponentCheck("degraded", details)
    metrics.observe_backlog(backlog.count, backlog.oldest_received_at)
    age = backlog.oldest_age(clock())
    details["backlog"] = backlog.count
    details["oldest_unpublished_age_seconds"] = None if age is None else round(age, 3)
    return ComponentCheck("degraded" if state == "disconnected" else "ok", details)


async def _monitor(reader: aiosqlite.Connection, metrics: PublishMetrics, interval: float) -> None:
    """Keep the backlog gauges fresh between scrapes (a scrape cannot await the database)."""
    while True:
        try:
            backlog = await outbox.backlog(reader)
        except Exception as exc:
            log.debug("backlog query failed: %s", describe(exc))
        else:
            metrics.observe_backlog(backlog.count, backlog.oldest_received_at)
        await asyncio.sleep(interval)
