"""The application factory: settings in, a ready-to-run aiohttp application out."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from receiver.callbacks import view as callbacks
from receiver.callbacks.view import ingest_ctx
from receiver.dashboard import pages as dashboard
from receiver.dashboard import pipeline
from receiver.health import ComponentCheck
from receiver.history import views as api
from receiver.insight import views as insight
from receiver.insight.wiring import insight_ctx
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS, HealthChecks
from receiver.metrics import Metrics
from receiver.moderation import views as moderation
from receiver.moderation.wiring import moderation_ctx
from receiver.outbox import replay_view as replay
from receiver.outbox.broker import broker_ctx
from receiver.outbox.pg_broker import postgres_broker_ctx
from receiver.reconcile.backup import backup_roles_ctx
from receiver.reconcile.scheduler import reconcile_ctx
from receiver.settings import Settings
from receiver.storage.context import storage_ctx
from receiver.storage.engine import is_postgres
from receiver.storage.postgres.context import postgres_storage_ctx
from receiver.tencent.autoregister import TencentSetup
from receiver.tencent.wiring import (
    TENCENT,
    auto_register_ctx,
    client_session_ctx,
    moderation_calls_api,
)
from receiver.web import openapi, ops
from receiver.web.auth import api_auth_middleware
from receiver.web.budget import BODY_BUDGET, BodyBudget
from receiver.web.direct import DIRECT_ROUTES, DirectRoutes
from receiver.web.httplog import malformed_requests_ctx
from receiver.web.inflight import IN_FLIGHT, InFlight
from receiver.web.middleware import error_middleware


async def _not_started() -> ComponentCheck:
    return ComponentCheck("fail", {"writable": False, "error": "storage is not started"})


async def _broker_not_started() -> ComponentCheck:
    return ComponentCheck("degraded", {"state": "disconnected", "error": "not started"})


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    tencent: TencentSetup | None = None,
) -> web.Application:
    """Build the service. Nothing touches the disk or network until the app starts.

    `settings.callback_keys` and `settings.api_token` must be set: `receiver serve` fills them
    (from the environment or generated files) before calling this; a missing secret is a
    start-up error, never a silent "accept everything". With `tencent_auto_register` on,
    `tencent` (the API credentials) is required for the same reason.
    """
    if not settings.callback_keys:
        raise ValueError("no callback key configured: set RECEIVER_CALLBACK_KEYS")
    if settings.api_token is None:
        raise ValueError("no API token configured: set RECEIVER_API_TOKEN")
    if settings.tencent_auto_register and tencent is None:
        raise ValueError(
            "auto-registration needs Tencent Cloud API credentials: set "
            "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"
        )
    reconciling = settings.tencent_reconcile_interval is not None
    region = settings.tencent_backup_region or (tencent.credentials.region if tencent else None)
    if reconciling and tencent is None:
        raise ValueError(
            "reconciliation (RECEIVER_TENCENT_RECONCILE_INTERVAL) needs Tencent Cloud API "
            "credentials: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"
        )
    if moderation_calls_api(settings) and tencent is None:
        raise ValueError(
            f"RECEIVER_MODERATION_ACTION={settings.moderation_action} needs Tencent Cloud API "
            "credentials: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (or "
            "RECEIVER_MODERATION_DRY_RUN=true)"
        )
    # Errors wrap the API token check, so its refusals are answered as JSON like any other.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, api_auth_middleware],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics.create()
    app[IN_FLIGHT] = InFlight()
    app[DIRECT_ROUTES] = DirectRoutes()  # filled at start-up; served by DirectRunner
    app[BODY_BUDGET] = BodyBudget(max(settings.max_pending_body_bytes, settings.max_body_bytes))
    checks: HealthChecks = {"database": _not_started, "broker": _broker_not_started}
    app[HEALTH_CHECKS] = checks
    app.cleanup_ctx.append(malformed_requests_ctx)
    if is_postgres(settings.database):
        # Several replicas on one database (docs/scaling.md).
        app.cleanup_ctx.append(postgres_storage_ctx)
        app.cleanup_ctx.append(ingest_ctx)
        app.cleanup_ctx.append(postgres_broker_ctx)  # per partition (docs/scaling.md)
    else:
        app.cleanup_ctx.append(storage_ctx)
        app.cleanup_ctx.append(ingest_ctx)  # after storage: the ingestor writes through it
        app.cleanup_ctx.append(broker_ctx)  # after storage: it stops first and still can write
    if tencent is not None:
        app[TENCENT] = tencent
        # After storage, so shutdown stops the API's users before the database closes.
        app.cleanup_ctx.append(client_session_ctx)
        if settings.tencent_auto_register:
            app.cleanup_ctx.append(auto_register_ctx)
        if reconciling:
            app.cleanup_ctx.append(reconcile_ctx)
        # Main/backup roles of overlapping sessions (DescribeBackupStreamList).
        if region:
            app.cleanup_ctx.append(backup_roles_ctx)
    app.cleanup_ctx.append(moderation_ctx)  # after storage and the client session
    app.cleanup_ctx.append(insight_ctx)
    openapi.setup(app)
    callbacks.setup_routes(app)
    ops.setup_routes(app)
    api.setup_routes(app)
    replay.setup_routes(app)
    moderation.setup_routes(app)
    insight.setup_routes(app)
    pipeline.setup_routes(app)
    dashboard.setup_routes(app)
    return app
