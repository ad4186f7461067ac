"""The broker cleanup context on PostgreSQL: partition ownership, the relay task, readiness,
replay jobs (recorded in the database: any replica answers for them, `pg_replay`).

Appended after the PostgreSQL storage context, so on shutdown it stops first: the relay finishes
its pass and records the outcomes while the pool is still open, then ownership is released
(closing its session frees the partitions for the other replicas at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web

from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS
from receiver.outbox.backoff import Backoff
from receiver.outbox.broker import PUBLISH_METRICS, REPLAY_JOBS, make_publisher
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.pg_relay import PostgresRelay
from receiver.outbox.pg_replay import PostgresBook, PostgresSource
from receiver.outbox.publisher import mask_url
from receiver.outbox.replay_jobs import ReplayJobs
from receiver.settings import Settings
from receiver.storage.postgres.context import POSTGRES, PostgresStorage
from receiver.storage.postgres.ownership import PartitionOwnership
from receiver.storage.postgres.pool import describe_error

log = logging.getLogger(__name__)

PG_RELAY = web.AppKey("pg_relay", PostgresRelay)
_BACKLOG: Final = (
    "SELECT count(*) AS n, min(received_at) AS oldest FROM events WHERE published_at IS NULL"
)
_QUERY_TIMEOUT: Final = 5.0


async def postgres_broker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    storage = app[POSTGRES]
    clock = app[CLOCK]
    metrics = PublishMetrics.create(app[METRICS].registry, clock)
    app[PUBLISH_METRICS] = metrics
    relay: PostgresRelay | None = None
    task: asyncio.Task[None] | None = None
    if settings.amqp_url is not None:
        ownership = PartitionOwnership(storage.url)
        relay = PostgresRelay(
            publisher=make_publisher(settings, metrics, name="receiver outbox"),
            pool=storage.pool,
            ownership=ownership,
            metrics=metrics,
            clock=clock,
            batch_size=settings.publish_batch,
            backoff=Backoff(cap=settings.publish_retry_max_seconds),
        )
        ownership.on_notify = relay.wake
        app[PG_RELAY] = relay
        app[REPLAY_JOBS] = ReplayJobs(
            PostgresSource(storage.pool),
            PostgresBook(storage.pool),
            lambda: make_publisher(settings, metrics, name="receiver replay"),
            metrics,
            clock,
        )
        task = asyncio.create_task(relay.run(), name="outbox-relay")
    else:
        log.warning("RECEIVER_AMQP_URL is not set: publishing is off, events wait in the outbox")
    app[HEALTH_CHECKS]["broker"] = lambda: check_broker(settings, relay, storage, metrics, clock())
    try:
        yield
    finally:
        if REPLAY_JOBS in app:
            await app[REPLAY_JOBS].close()
        if relay is not None and task is not None:
            relay.stop()
            try:
                await asyncio.wait_for(task, timeout=settings.publish_timeout_seconds + 5)
            except TimeoutError:
                log.warning("the outbox relay did not stop in time; cancelled it")
            await relay.close()


async def check_broker(
    settings: Settings,
    relay: PostgresRelay | None,
    storage: PostgresStorage,
    metrics: PublishMetrics,
    now: float,
) -> ComponentCheck:
    """As on SQLite, plus the partitions this replica publishes."""
    state = relay.state if relay is not None else "disabled"
    details: dict[str, Any] = {
        "state": state,
        "backlog": None,
        "oldest_unpublished_age_seconds": None,
        "exchange": settings.amqp_exchange,
        "partitions_owned": len(relay.owned) if relay is not None else 0,
    }
    if settings.amqp_url is not None:
        details["url"] = mask_url(settings.amqp_url.get_secret_value())
    if relay is not None and relay.last_error:
        details["last_error"] = relay.last_error
    try:
        async with asyncio.timeout(_QUERY_TIMEOUT):
            row = await storage.pool.fetchrow(_BACKLOG)
    except Exception as exc:
        details["error"] = f"backlog query failed: {describe_error(exc)}"
        return ComponentCheck("degraded", details)
    assert row is not None
    oldest = row["oldest"]
    metrics.observe_backlog(int(row["n"]), oldest)
    details["backlog"] = int(row["n"])
    if oldest is not None:
        details["oldest_unpublished_age_seconds"] = round(max(0.0, now - oldest), 3)
    return ComponentCheck("degraded" if state == "disconnected" else "ok", details)
