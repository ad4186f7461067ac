"""The middleware: errors as JSON (in one place), and request timing."""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from receiver.apiauth import is_api_path
from receiver.errors import PayloadTooLarge, ReceiverError
from receiver.keys import IN_FLIGHT, METRICS, SETTINGS

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error body, time every request, count those in flight.

    Callback routes answer `{"code", "error", "message"}` (CSS-style); `/api/...` routes answer
    `{"error", "message"}`, the shape the history API documents. One middleware does all three
    jobs (the in-flight count is what shutdown waits for): each middleware layer costs a
    coroutine frame per request. Only truly unexpected exceptions are logged here; refusals are
    logged where they are counted.
    """
    started = time.perf_counter()
    in_flight = request.app[IN_FLIGHT]
    in_flight.begin()
    try:
        return await handler(request)
    except ReceiverError as exc:
        return web.json_response(exc.as_json(), status=exc.status, headers=exc.headers)
    except web.HTTPRequestEntityTooLarge:
        error = PayloadTooLarge(request.app[SETTINGS].max_body_bytes)
        return web.json_response(error.as_json(), status=error.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response(
            _error_body(request, 500, "internal_error", "unexpected server error"), status=500
        )
    finally:
        in_flight.end()
        request.app[METRICS].observe_request(
            request.match_info.route.resource, time.perf_counter() - started
        )


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
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


def _error_body(request: web.Request, status: int, error: str, message: str) -> dict[str, object]:
    if is_api_path(request.path):
        return {"error": error, "message": message}
    return {"code": status, "error": error, "message": message}
