"""The storage cleanup context: the database lock and checks, migrations, the inbox file,
connections, the writer and fold processes, and how far the fold is behind (readiness `fold`,
metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiosqlite
from aiohttp import web

from receiver.errors import CommitFailed
from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS
from receiver.metrics import Metrics
from receiver.moderation.policy import ModerationPolicy
from receiver.settings import Settings
from receiver.storage.connect import connect
from receiver.storage.engine import sqlite_path
from receiver.storage.fold_priority import FoldPriority
from receiver.storage.fold_worker import FoldWorker
from receiver.storage.frames import Folded
from receiver.storage.inbox import FoldBacklog, attach_inbox, fold_backlog, rejected_note
from receiver.storage.inbox_file import prepare_inbox
from receiver.storage.intake import INTAKE
from receiver.storage.lock import DatabaseLock
from receiver.storage.migrations import Migration, apply_migrations
from receiver.storage.preflight import mark_used, preflight
from receiver.storage.writer import EventWriter

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
# A fold commit this recent is proof enough that the database takes the fold's writes; older,
# readiness asks the fold for a probe and waits this long for it. The fold runs at the idle CPU
# priority, so during a burst a probe may wait for the CPU: readiness must not wait with it.
FOLD_EVIDENCE_SECONDS = 5.0
FOLD_PROBE_TIMEOUT_SECONDS = 1.0
_BACKLOG_QUERY_TIMEOUT = 5.0

READER = web.AppKey("reader", aiosqlite.Connection)
WRITER = web.AppKey("writer", EventWriter)
FOLDER = web.AppKey("folder", FoldWorker)


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
    lock, _ = await prepare_database(sqlite_path(settings.database), settings.startup_check_seconds)
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
        await asyncio.to_thread(prepare_inbox, database)
        await asyncio.to_thread(mark_used, database)
    except BaseException:
        lock.release()
        raise
    return lock, applied


@contextlib.asynccontextmanager
async def _writing(app: web.Application) -> AsyncIterator[None]:
    """The reader connection and the two storage processes, for as long as the app serves."""
    settings = app[SETTINGS]
    metrics = app[METRICS]
    clock = app[CLOCK]
    database = sqlite_path(settings.database)
    reader = await connect(database)
    await attach_inbox(reader, database)
    folder = FoldWorker(
        database,
        batch=settings.fold_batch,
        priority=settings.fold_priority,
        log_level=settings.log_level,
        log_format=settings.log_format,
        moderation=ModerationPolicy.from_settings(settings).to_json(),
        on_fold=lambda folded: observe_fold(metrics, folded),
    )
    writer = EventWriter(
        database,
        max_batch=settings.writer_max_batch,
        log_level=settings.log_level,
        log_format=settings.log_format,
        on_commit=metrics.observe_commit,
        on_appended=folder.wake,
    )
    folder.on_through = writer.trim
    priority = (
        FoldPriority(lambda: folder.pid, max_lag_seconds=settings.fold_max_lag_seconds)
        if settings.fold_priority == "idle"
        else None
    )
    monitor: asyncio.Task[None] | None = None
    try:
        await folder.start()
        await writer.start()
        app[READER] = reader
        app[WRITER] = writer
        app[INTAKE] = writer
        app[FOLDER] = folder
        app[HEALTH_CHECKS]["database"] = lambda: check_database(writer)
        app[HEALTH_CHECKS]["fold"] = lambda: check_fold(reader, folder, metrics, clock, priority)
        monitor = asyncio.create_task(
            _monitor(reader, metrics, clock, priority, _monitor_interval(settings)),
            name="fold-monitor",
        )
        yield
    finally:
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        # Shutdown order: in-flight requests have finished (aiohttp waits for them before
        # running cleanup), so the writer can commit the last batch, then the fold folds what
        # it can, then connections close.
        await writer.close()
        await folder.close()
        await reader.close()


def observe_fold(metrics: Metrics, folded: Folded) -> None:
    """What one fold stored, duplicates and schema mismatches by kind, and how long it took."""
    if folded.rows:
        metrics.fold_seconds.observe(folded.seconds)
    for kind, stored, duplicates, schema_errors, rejected in folded.counts:
        metrics.folded(kind, stored, duplicates, schema_errors, rejected)


def _observe_backlog(metrics: Metrics, backlog: FoldBacklog, now: float) -> float | None:
    age = backlog.oldest_age(now)
    metrics.fold_backlog.set(backlog.count)
    metrics.fold_oldest_age.set(age or 0.0)
    return age


def _monitor_interval(settings: Settings) -> float:
    """Often enough to keep the gauges fresh and to raise a lagging fold's priority in time."""
    return min(settings.outbox_stats_interval_seconds, max(0.1, settings.fold_max_lag_seconds / 4))


async def check_fold(
    reader: aiosqlite.Connection,
    folder: FoldWorker,
    metrics: Metrics,
    clock: Callable[[], float],
    priority: FoldPriority | None = None,
) -> ComponentCheck:
    """How far history lags the acknowledgements: `degraded` while the fold is stuck on a row
    it cannot store, or cannot commit to the database at all (the callbacks are safe in the
    inbox; history and publishing wait)."""
    details: dict[str, object] = {"backlog": None, "oldest_unfolded_age_seconds": None}
    try:
        async with asyncio.timeout(_BACKLOG_QUERY_TIMEOUT):
            backlog = await fold_backlog(reader)
    except Exception as exc:
        details["error"] = f"inbox query failed: {type(exc).__name__}: {exc}"
        return ComponentCheck("degraded", details)
    age = _observe_backlog(metrics, backlog, clock())
    details["backlog"] = backlog.count
    details["oldest_unfolded_age_seconds"] = None if age is None else round(age, 3)
    details["rejected"] = backlog.rejected
    if priority is not None:
        priority.observe(age)
        details["priority"] = "raised" if priority.raised else "idle"
        if priority.error is not None:
            details["priority_error"] = priority.error
    if folder.fold_error is not None:
        details["error"] = folder.fold_error
        return ComponentCheck("degraded", details)
    last = folder.last_commit
    if last is not None:
        details["last_commit_seconds_ago"] = round(time.monotonic() - last, 3)
    if last is None or time.monotonic() - last > FOLD_EVIDENCE_SECONDS:
        try:
            async with asyncio.timeout(FOLD_PROBE_TIMEOUT_SECONDS):
                await folder.probe()
        except CommitFailed as exc:
            details["error"] = f"the fold cannot commit to the database: {exc.detail}"
            return ComponentCheck("degraded", details)
        except TimeoutError:
            details["error"] = (
                f"the fold did not commit a probe within {FOLD_PROBE_TIMEOUT_SECONDS:g} s"
                " (it runs at the idle CPU priority: a busy CPU delays it)"
            )
            return ComponentCheck("degraded", details)
        except Exception as exc:
            details["error"] = f"the fold cannot commit: {type(exc).__name__}: {exc}".strip()
            return ComponentCheck("degraded", details)
    if backlog.rejected:
        details["error"] = rejected_note(backlog.rejected)
        return ComponentCheck("degraded", details)
    return ComponentCheck("ok", details)


async def _monitor(
    reader: aiosqlite.Connection,
    metrics: Metrics,
    clock: Callable[[], float],
    priority: FoldPriority | None,
    interval: float,
) -> None:
    """Keep the fold gauges fresh between scrapes (a scrape cannot await the database), and a
    lagging idle fold's priority raised."""
    while True:
        try:
            backlog = await fold_backlog(reader)
        except Exception as exc:
            log.debug("inbox query failed: %s", exc)
        else:
            age = _observe_backlog(metrics, backlog, clock())
            if priority is not None:
                priority.observe(age)
        await asyncio.sleep(interval)


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
