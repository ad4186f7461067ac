"""The two middlewares: errors as JSON (in one place), and request timing."""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from receiver.apiauth import is_api_path
from receiver.errors import PayloadTooLarge, ReceiverError
from receiver.keys import METRICS, SETTINGS

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error body; log only the unexpected ones.

    Callback routes answer `{"code", "error", "message"}` (CSS-style); `/api/...` routes answer
    `{"error", "message"}`, the shape the history API documents.
    """
    try:
        return await handler(request)
    except ReceiverError as exc:
        return web.json_response(exc.as_json(), status=exc.status, headers=exc.headers)
    except web.HTTPRequestEntityTooLarge:
        error = PayloadTooLarge(request.config_dict[SETTINGS].max_body_bytes)
        return web.json_response(error.as_json(), status=error.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        name = HTTPStatus(exc.status).phrase.lower().replace(" ", "_").replace("-", "_")
        message = {
            404: f"no route for {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.status, exc.reason)
        return web.json_response(
            _error_body(request, exc.status, name, message),
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response(
            _error_body(request, 500, "internal_error", "unexpected server error"), status=500
        )


def _error_body(request: web.Request, status: int, error: str, message: str) -> dict[str, object]:
    if is_api_path(request.path):
        return {"error": error, "message": message}
    return {"code": status, "error": error, "message": message}


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe `receiver_request_seconds` by route (the route template, never the raw path)."""
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        histogram = request.config_dict[METRICS].request_seconds
        histogram.labels(route).observe(time.perf_counter() - started)
