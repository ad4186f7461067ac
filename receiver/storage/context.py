"""The storage cleanup context: the database lock and checks, migrations, connections and the
writer process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
from aiohttp import web

from receiver.errors import CommitFailed
from receiver.health import ComponentCheck
from receiver.keys import HEALTH_CHECKS, METRICS, SETTINGS
from receiver.storage.connect import connect
from receiver.storage.lock import DatabaseLock
from receiver.storage.migrations import Migration, apply_migrations
from receiver.storage.preflight import mark_used, preflight
from receiver.storage.writer import EventWriter

PROBE_TIMEOUT_SECONDS = 5.0

READER = web.AppKey("reader", aiosqlite.Connection)
WRITER = web.AppKey("writer", EventWriter)


def get_reader(request: web.Request) -> aiosqlite.Connection:
    """The read connection (WAL: reads never wait for the writer); set by the storage context."""
    try:
        return request.config_dict[READER]
    except KeyError:
        raise RuntimeError(
            "the database is not open: create the app with receiver.app.create_app()"
        ) from None


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """Lock and check the database, migrate it, start the writer process; on shutdown let the
    writer commit the rest.

    Raises `StartupRefused` (one line for the operator) when another service holds the
    database, or it is missing, empty or damaged where one was in use.
    """
    settings = app[SETTINGS]
    lock, _ = await prepare_database(settings.database, settings.startup_check_seconds)
    try:
        async with _writing(app):
            yield
    finally:
        lock.release()  # after the writer stopped: never two writers on one database


async def prepare_database(
    database: Path, check_seconds: float
) -> tuple[DatabaseLock, list[Migration]]:
    """Lock the database, check it, apply pending migrations and mark it used; the caller
    releases the lock. `receiver serve` and `receiver migrate` both start here, so neither can
    bring a lost database back empty or migrate one another service is writing."""
    lock = await asyncio.to_thread(DatabaseLock.acquire, database)
    try:
        await asyncio.to_thread(preflight, database, check_seconds=check_seconds)
        # Migrations run here, before the writer process opens the database.
        conn = await connect(database)
        try:
            applied = await apply_migrations(conn)
        finally:
            await conn.close()
        await asyncio.to_thread(mark_used, database)
    except BaseException:
        lock.release()
        raise
    return lock, applied


@contextlib.asynccontextmanager
async def _writing(app: web.Application) -> AsyncIterator[None]:
    """The reader connection and the writer process, for as long as the app serves."""
    settings = app[SETTINGS]
    reader = await connect(settings.database)
    writer = EventWriter(
        settings.database,
        max_batch=settings.writer_max_batch,
        log_level=settings.log_level,
        log_format=settings.log_format,
        on_commit=app[METRICS].observe_commit,
    )
    try:
        await writer.start()
        app[READER] = reader
        app[WRITER] = writer
        app[HEALTH_CHECKS]["database"] = lambda: check_database(writer)
        yield
    finally:
        # Shutdown order: in-flight requests have finished (aiohttp waits for them before
        # running cleanup), so the writer can commit the last batch, then connections close.
        await writer.close()
        await reader.close()


async def check_database(writer: EventWriter) -> ComponentCheck:
    """Commit a probe through the writer: the only honest proof that events reach disk.

    The writer fails the probe also while recent event commits failed, so this is 503 whenever
    callbacks are refused for storage, not only when the heartbeat itself cannot commit.
    """
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await writer.probe()
    except CommitFailed as exc:
        return ComponentCheck("fail", {"writable": False, "error": exc.detail})
    except Exception as exc:
        return ComponentCheck(
            "fail", {"writable": False, "error": f"{type(exc).__name__}: {exc}".strip()}
        )
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return ComponentCheck("ok", {"writable": True, "commit_ms": elapsed_ms})
