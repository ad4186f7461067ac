"""Typed application keys and accessors: the explicit dependencies of every handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite
from aiohttp import web

from receiver.admission import BodyBudget
from receiver.health import ComponentCheck
from receiver.inflight import InFlight
from receiver.ingest import Ingestor
from receiver.metrics import Metrics
from receiver.settings import Settings
from receiver.writer import EventWriter

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
CLOCK = web.AppKey[Callable[[], float]]("clock")
READER = web.AppKey("reader", aiosqlite.Connection)
WRITER = web.AppKey("writer", EventWriter)
INGESTOR = web.AppKey("ingestor", Ingestor)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
# Named readiness checks; each component adds its own (database here, broker in the outbox).
HealthChecks = dict[str, Callable[[], Awaitable[ComponentCheck]]]
HEALTH_CHECKS = web.AppKey[HealthChecks]("health_checks")


def get_ingestor(app: web.Application) -> Ingestor:
    """The ingest pipeline; present once the storage cleanup context has started."""
    try:
        return app[INGESTOR]
    except KeyError:
        raise RuntimeError(
            "the ingestor is not set up: create the app with receiver.app.create_app()"
        ) from None
