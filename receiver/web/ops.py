"""Operations endpoints: liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from typing import Final, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from receiver.health import overall
from receiver.keys import HEALTH_CHECKS, METRICS
from receiver.web.openapi import Operation, Response, document


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


class Alive(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "fail"]
    database: dict[str, object]
    broker: dict[str, object]
    clock: dict[str, object] | None = None
    fold: dict[str, object] | None = None


_READY: Final = "Each component's report; `status` is the worst of them."
_OPERATIONS: Final = {
    "/healthz": Operation(
        summary="Liveness", tag="operations", responses={200: Response("Alive.", Alive)}
    ),
    "/readyz": Operation(
        summary="Readiness: can events be committed?",
        tag="operations",
        responses={
            200: Response(f"Ready (ok or degraded). {_READY}", Readiness),
            503: Response(f"Not ready: the database is not writable. {_READY}", Readiness),
        },
    ),
    "/metrics": Operation(
        summary="Prometheus metrics",
        tag="operations",
        responses={
            200: Response(
                "Text exposition format.", media_type="text/plain", schema={"type": "string"}
            )
        },
    ),
}


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
    for path, operation in _OPERATIONS.items():
        document(app, "GET", path, operation)
