"""Operations endpoints: liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.health import overall
from receiver.keys import HEALTH_CHECKS, METRICS


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 while events can be committed (even with the broker down), 503 otherwise."""
    checks = request.config_dict[HEALTH_CHECKS]
    status, report = await overall(checks)
    return web.json_response({"status": status, **report}, status=503 if status == "fail" else 200)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.config_dict[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
