"""The storage cleanup context: database connections, migrations and the writer process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiosqlite
from aiohttp import web

from receiver.health import ComponentCheck
from receiver.keys import HEALTH_CHECKS, METRICS, SETTINGS
from receiver.storage.connect import connect
from receiver.storage.migrations import apply_migrations
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
    """Migrate the database, start the writer process; on shutdown let it commit the rest."""
    settings = app[SETTINGS]
    metrics = app[METRICS]
    # Migrations run here, before the writer process opens the database.
    conn = await connect(settings.database)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    reader = await connect(settings.database)
    writer = EventWriter(
        settings.database,
        max_batch=settings.writer_max_batch,
        log_level=settings.log_level,
        log_format=settings.log_format,
        on_commit=metrics.observe_commit,
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
    """Commit a heartbeat through the writer: the only honest proof that writes reach disk."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await writer.probe()
    except Exception as exc:
        return ComponentCheck(
            "fail", {"writable": False, "error": f"{type(exc).__name__}: {exc}".strip()}
        )
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return ComponentCheck("ok", {"writable": True, "commit_ms": elapsed_ms})
