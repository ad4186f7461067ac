"""Typed application keys every stage reads: settings, metrics, the clock and readiness checks.

Keys of a stage's own resources live with the stage that sets them (`storage.context.WRITER`,
`outbox.broker.RELAY`, `callbacks.view.ENDPOINT`, ...), so this module imports nothing above the
bottom layer and `app.py` is the one place that wires them together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from receiver.health import ComponentCheck
from receiver.metrics import Metrics
from receiver.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
CLOCK = web.AppKey[Callable[[], float]]("clock")
# Named readiness checks; each component adds its own (database, broker, registration).
HealthChecks = dict[str, Callable[[], Awaitable[ComponentCheck]]]
HEALTH_CHECKS = web.AppKey[HealthChecks]("health_checks")
