"""The application factory: settings in, a ready-to-run aiohttp application out."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from receiver.admission import BodyBudget
from receiver.health import ComponentCheck
from receiver.inflight import InFlight
from receiver.keys import (
    BODY_BUDGET,
    CLOCK,
    HEALTH_CHECKS,
    IN_FLIGHT,
    METRICS,
    SETTINGS,
    HealthChecks,
)
from receiver.metrics import Metrics
from receiver.middlewares import error_middleware
from receiver.settings import Settings
from receiver.storage import storage_ctx
from receiver.views import callbacks, ops


async def _not_started() -> ComponentCheck:
    return ComponentCheck("fail", {"writable": False, "error": "storage is not started"})


async def _broker_disabled() -> ComponentCheck:
    return ComponentCheck("ok", {"state": "disabled"})


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the service. Nothing touches the disk or network until the app starts.

    `settings.callback_keys` must not be empty: `receiver serve` fills it (from the environment
    or a generated key file) before calling this; a missing key is a start-up error, never a
    silent "accept everything".
    """
    if not settings.callback_keys:
        raise ValueError("no callback key configured: set RECEIVER_CALLBACK_KEYS")
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics.create()
    app[IN_FLIGHT] = InFlight()
    app[BODY_BUDGET] = BodyBudget(max(settings.max_pending_body_bytes, settings.max_body_bytes))
    checks: HealthChecks = {"database": _not_started, "broker": _broker_disabled}
    app[HEALTH_CHECKS] = checks
    app.cleanup_ctx.append(storage_ctx)
    callbacks.setup_routes(app)
    ops.setup_routes(app)
    return app
