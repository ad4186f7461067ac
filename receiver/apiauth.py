"""Bearer-token protection for `/api` routes (RECEIVER_API_TOKEN), compared in constant time.

Without a configured token the API refuses with 503 instead of running unprotected. Kept tiny
and separate on purpose: the history API brings the same check, and the two merge into one.
"""

from __future__ import annotations

import hmac
import logging
from typing import ClassVar, NoReturn

from aiohttp import web

from receiver.errors import ReceiverError
from receiver.keys import PUBLISH_METRICS, SETTINGS

log = logging.getLogger(__name__)


class ApiUnauthorized(ReceiverError):
    status: ClassVar[int] = 401


class ApiDisabled(ReceiverError):
    status: ClassVar[int] = 503


def require_api_token(request: web.Request) -> None:
    """Return if the request carries `Authorization: Bearer <RECEIVER_API_TOKEN>`, else raise."""
    expected = request.config_dict[SETTINGS].api_token
    if expected is None:
        _refuse(
            request,
            ApiDisabled(
                "api_token_not_configured",
                "the /api endpoints are disabled: set RECEIVER_API_TOKEN to enable them",
            ),
        )
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        _refuse(
            request,
            ApiUnauthorized(
                "token_missing", "send the API token as 'Authorization: Bearer <token>'"
            ),
        )
    if not hmac.compare_digest(presented.strip().encode(), expected.get_secret_value().encode()):
        _refuse(request, ApiUnauthorized("token_mismatch", "the API token is not valid"))


def _refuse(request: web.Request, error: ReceiverError) -> NoReturn:
    request.config_dict[PUBLISH_METRICS].api_refusals.labels(error.error).inc()
    log.warning(
        "refused %s %s from %s: %s", request.method, request.path, request.remote, error.error
    )
    raise error
