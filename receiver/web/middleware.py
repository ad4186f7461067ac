"""The middleware: errors as JSON (in one place), request timing, requests in flight.

Callbacks are the hot path and answer their own errors with `error_response` (the same
mapping), count themselves in flight and time themselves, whether the server answers them
directly (`receiver.web.direct`) or through the router: on their routes the middleware hands
their coroutine straight back to aiohttp instead of wrapping it in another one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from receiver.errors import PayloadTooLarge, ReceiverError
from receiver.keys import METRICS
from receiver.logs import printable
from receiver.web.auth import is_api_path
from receiver.web.inflight import IN_FLIGHT

log = logging.getLogger(__name__)

# Routes whose handlers answer their own errors and time themselves (see the module doc).
SELF_HANDLED_ROUTES: Final = frozenset({"callbacks", "callbacks_kind"})


@web.middleware
def error_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Turn every failure into a JSON error body, time every request, count those in flight.

    Callback routes answer `{"code", "error", "message"}` (CSS-style); `/api/...` routes answer
    `{"error", "message"}`, the shape the history API documents. The in-flight count is what
    shutdown waits for. Callback routes do all of this themselves (see the module doc).
    """
    if request.match_info.route.name in SELF_HANDLED_ROUTES:
        return handler(request)
    return _guarded(request, handler)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    in_flight = request.app[IN_FLIGHT]
    in_flight.begin()
    try:
        return await handler(request)
    except Exception as exc:
        return error_response(request, exc)
    finally:
        in_flight.end()
        request.app[METRICS].observe_request(
            request.match_info.route.resource, time.perf_counter() - started
        )


def error_response(request: web.BaseRequest, exc: Exception) -> web.StreamResponse:
    """The JSON answer to a failed request; re-raises what is not an error (HTTP 3xx).

    Only truly unexpected exceptions are logged here; refusals are logged where they are counted.
    """
    if isinstance(exc, ReceiverError):
        return web.json_response(exc.as_json(), status=exc.status, headers=exc.headers)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        error = PayloadTooLarge(request.client_max_size)  # RECEIVER_MAX_BODY_BYTES
        return web.json_response(error.as_json(), status=error.status)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return _http_error(request, exc)
    log.error(
        "unexpected error on %s %s",
        printable(request.method),
        printable(request.path),
        exc_info=exc,
    )
    return web.json_response(
        _error_body(request, 500, "internal_error", "unexpected server error"), status=500
    )


def _http_error(request: web.BaseRequest, exc: web.HTTPException) -> web.Response:
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


def _error_body(
    request: web.BaseRequest, status: int, error: str, message: str
) -> dict[str, object]:
    if is_api_path(request.path):
        return {"error": error, "message": message}
    return {"code": status, "error": error, "message": message}
