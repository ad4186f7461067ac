"""Typed application keys and accessors: the explicit dependencies of every handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite
from aiohttp import web

from receiver.health import ComponentCheck
from receiver.ingest import Ingestor
from receiver.metrics import Metrics
from receiver.settings import Settings
from receiver.writer import GroupCommitWriter

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
CLOCK = web.AppKey[Callable[[], float]]("clock")
READER = web.AppKey("reader", aiosqlite.Connection)
WRITER = web.AppKey("writer", GroupCommitWriter)
INGESTOR = web.AppKey("ingestor", Ingestor)
# Named readiness checks; each component adds its own (database here, broker in the outbox).
HealthChecks = dict[str, Callable[[], Awaitable[ComponentCheck]]]
HEALTH_CHECKS = web.AppKey[HealthChecks]("health_checks")


def get_ingestor(request: web.Request) -> Ingestor:
    """The ingest pipeline; present once the database cleanup context has started."""
    try:
        return request.config_dict[INGESTOR]
    except KeyError:
        raise RuntimeError(
            "the ingestor is not set up: create the app with receiver.app.create_app()"
        ) from None


def get_reader(request: web.Request) -> aiosqlite.Connection:
    """The read connection (WAL: reads never wait for the writer); set by the storage context."""
    try:
        return request.config_dict[READER]
    except KeyError:
        raise RuntimeError(
            "the database is not open: create the app with receiver.app.create_app()"
        ) from None
