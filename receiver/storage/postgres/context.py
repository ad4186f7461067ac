"""The storage cleanup context on PostgreSQL: the pool, migrations, the intake, readiness.

Where SQLite locks its file against a second service, PostgreSQL is the engine for several
replicas: any number of `receiver serve` processes may run on one database. They migrate under
an advisory lock (`migrations`), store through the unique dedupe index and the partition locks
(`intake`), and read what any of them stored.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import Gauge

from receiver.errors import StartupRefused
from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS
from receiver.moderation.pg_book import PgActionBook
from receiver.moderation.policy import ModerationPolicy
from receiver.storage.engine import PostgresUrl
from receiver.storage.inbox import rejected_note
from receiver.storage.intake import INTAKE
from receiver.storage.migrations import Migration
from receiver.storage.partitions import PARTITIONS
from receiver.storage.postgres.intake import PostgresIntake
from receiver.storage.postgres.migrations import apply_migrations
from receiver.storage.postgres.pool import acquire, bounded, describe_error, open_pool, release
from receiver.storage.postgres.rejects import COUNT_REJECTED

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
# Connections per replica: the intake uses one at a time, reads and probes the rest.
POOL_SIZE = 10
_HEARTBEAT = (
    "INSERT INTO service_state (key, value) VALUES ('heartbeat', $1)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)


@dataclass(frozen=True, slots=True)
class PostgresStorage:
    """What the app reads PostgreSQL through."""

    url: PostgresUrl
    pool: asyncpg.Pool[Any]
    intake: PostgresIntake


POSTGRES = web.AppKey("postgres", PostgresStorage)


def get_postgres(request: web.Request) -> PostgresStorage | None:
    """The PostgreSQL storage, or None when the service runs on SQLite."""
    return request.config_dict.get(POSTGRES)


async def prepare_postgres(url: PostgresUrl) -> tuple[asyncpg.Pool[Any], list[Migration]]:
    """Connect, check durability, migrate; `receiver serve` and `receiver migrate` both start
    here. The caller closes the pool."""
    pool = await open_pool(url, max_size=POOL_SIZE)
    try:
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn)
            partitions = await conn.fetchval("SELECT count(*) FROM ingest_partitions")
        if partitions != PARTITIONS:
            raise StartupRefused(
                f"the database has {partitions} ingest partitions, this version expects "
                f"{PARTITIONS}: it was made by another version of the receiver"
            )
    except BaseException:
        await pool.close()
        raise
    return pool, applied


async def postgres_storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pool and the intake for as long as the app serves; on shutdown the intake commits
    what it was given (in-flight requests have finished first)."""
    settings = app[SETTINGS]
    url = settings.database
    if not isinstance(url, PostgresUrl):  # pragma: no cover - app.py picks the context
        raise TypeError("postgres_storage_ctx needs a PostgreSQL URL")
    pool, _ = await prepare_postgres(url)
    log.info("storing events in PostgreSQL at %s", url.masked)
    intake = PostgresIntake(
        pool,
        app[METRICS],
        max_batch=settings.writer_max_batch,
        clock=app[CLOCK],
        commit_timeout=settings.database_timeout_seconds,
    )
    # Moderation actions are recorded with their triggering events (docs/moderation.md).
    intake.moderation = PgActionBook(ModerationPolicy.from_settings(settings), clock=app[CLOCK])
    try:
        intake.start()
        storage = app[POSTGRES] = PostgresStorage(url, pool, intake)
        _register_gauges(app, storage)
        app[INTAKE] = intake
        app[HEALTH_CHECKS]["database"] = lambda: check_database(storage, app[CLOCK]())
        yield
    finally:
        await intake.close()
        await pool.close()


def _register_gauges(app: web.Application, storage: PostgresStorage) -> None:
    """The pool and the last commit, read at scrape time (no polling needed)."""
    registry = app[METRICS].registry
    clock = app[CLOCK]
    pool, stats = storage.pool, storage.intake.stats
    connections = Gauge(
        "receiver_database_pool_connections",
        "PostgreSQL connections of this replica's pool, by state.",
        ["state"],
        registry=registry,
    )
    connections.labels("idle").set_function(pool.get_idle_size)
    connections.labels("in_use").set_function(lambda: pool.get_size() - pool.get_idle_size())
    Gauge(
        "receiver_database_last_commit_age_seconds",
        "Seconds since this replica last committed callbacks to PostgreSQL (NaN: none yet).",
        registry=registry,
    ).set_function(
        lambda: math.nan if stats.last_commit_at is None else clock() - stats.last_commit_at
    )


async def check_database(storage: PostgresStorage, now: float) -> ComponentCheck:
    """Commit a heartbeat through the pool: the proof that events can be committed now; `fail`
    also while recent event commits failed (`CommitHealth`), even if this one went through;
    `degraded` while `fold_rejects` holds callbacks the database refused (`rejects`)."""
    pool, intake = storage.pool, storage.intake
    last = intake.stats.last_commit_at
    details: dict[str, Any] = {
        "engine": "postgresql",
        "url": storage.url.masked,
        "pool": {
            "size": pool.get_size(),
            "idle": pool.get_idle_size(),
            "max": pool.get_max_size(),
        },
        "last_commit_age_seconds": None if last is None else round(max(0.0, now - last), 3),
        "transactions": intake.stats.transactions,
        "commit_failures": intake.stats.failures,
    }
    started = time.perf_counter()
    try:
        conn = await acquire(pool, PROBE_TIMEOUT_SECONDS)
        try:
            await bounded(conn, PROBE_TIMEOUT_SECONDS, conn.execute(_HEARTBEAT, repr(now)))
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            rejected = await bounded(conn, PROBE_TIMEOUT_SECONDS, conn.fetchval(COUNT_REJECTED))
        finally:
            await release(pool, conn, PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        return ComponentCheck("fail", {**details, "writable": False, "error": describe_error(exc)})
    problem = intake.health.problem()
    if problem is not None:
        return ComponentCheck("fail", {**details, "writable": False, "error": problem})
    details |= {"writable": True, "commit_ms": elapsed_ms, "rejected": rejected}
    if rejected:  # as SQLite's `fold` reports them: kept, not lost, but someone must look
        return ComponentCheck("degraded", {**details, "error": rejected_note(rejected)})
    return ComponentCheck("ok", details)
