"""Typed application keys and accessors: the explicit dependencies of every handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import aiosqlite
from aiohttp import web

from receiver.admission import BodyBudget
from receiver.health import ComponentCheck
from receiver.inflight import InFlight
from receiver.ingest import Ingestor
from receiver.metrics import Metrics
from receiver.publish_metrics import PublishMetrics
from receiver.relay import OutboxRelay
from receiver.replayjobs import ReplayJobs
from receiver.settings import Settings
from receiver.tencent.autoregister import AutoRegistrar, TencentSetup
from receiver.writer import EventWriter

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
CLOCK = web.AppKey[Callable[[], float]]("clock")
READER = web.AppKey("reader", aiosqlite.Connection)
WRITER = web.AppKey("writer", EventWriter)
INGESTOR = web.AppKey("ingestor", Ingestor)
PUBLISH_METRICS = web.AppKey("publish_metrics", PublishMetrics)
# Only present when RECEIVER_AMQP_URL is set (publishing on).
RELAY = web.AppKey("relay", OutboxRelay)
REPLAY_JOBS = web.AppKey("replay_jobs", ReplayJobs)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
# Named readiness checks; each component adds its own (database here, broker in the outbox).
HealthChecks = dict[str, Callable[[], Awaitable[ComponentCheck]]]
HEALTH_CHECKS = web.AppKey[HealthChecks]("health_checks")
# Auto-registration with Tencent CSS (only present when RECEIVER_TENCENT_AUTO_REGISTER is on).
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
TENCENT = web.AppKey("tencent", TencentSetup)
REGISTRAR = web.AppKey("registrar", AutoRegistrar)


def get_ingestor(app: web.Application) -> Ingestor:
    """The ingest pipeline; present once the storage cleanup context has started."""
    try:
        return app[INGESTOR]
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
