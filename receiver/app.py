"""The application factory: settings in, a ready-to-run aiohttp application out."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from receiver import openapi
from receiver.apiauth import api_auth_middleware
from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS, HealthChecks
from receiver.metrics import Metrics
from receiver.middlewares import error_middleware, timing_middleware
from receiver.settings import Settings
from receiver.storage import storage_ctx
from receiver.views import api, callbacks, ops


async def _not_started() -> ComponentCheck:
    return ComponentCheck("fail", {"writable": False, "error": "storage is not started"})


async def _broker_disabled() -> ComponentCheck:
    return ComponentCheck("ok", {"state": "disabled"})


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the service. Nothing touches the disk or network until the app starts.

    `settings.callback_keys` and `settings.api_token` must be set: `receiver serve` fills them
    (from the environment or generated files) before calling this; a missing secret is a
    start-up error, never a silent "accept everything".
    """
    if not settings.callback_keys:
        raise ValueError("no callback key configured: set RECEIVER_CALLBACK_KEYS")
    if settings.api_token is None:
        raise ValueError("no API token configured: set RECEIVER_API_TOKEN")
    # Middleware order: timing wraps errors, so refused requests are timed too; errors wrap the
    # API token check, so its refusals are answered as JSON like any other.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[timing_middleware, error_middleware, api_auth_middleware],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics.create()
    checks: HealthChecks = {"database": _not_started, "broker": _broker_disabled}
    app[HEALTH_CHECKS] = checks
    app.cleanup_ctx.append(storage_ctx)
    openapi.setup(app)
    callbacks.setup_routes(app)
    ops.setup_routes(app)
    api.setup_routes(app)
    return app
