"""Bearer-token authentication for every `/api/...` route.

One middleware guards the whole `/api/` prefix, so a route added later (the outbox's
`POST /api/events/replay`, for one) is protected without remembering to decorate it. The API
token is a different secret from the CSS callback keys: callback routes never look at the
`Authorization` header, and the API never accepts a callback signature.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from receiver.errors import ApiUnauthorized
from receiver.keys import METRICS, SETTINGS
from receiver.logs import printable

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    """True for `/api` and everything under it."""
    return path == API_PREFIX.rstrip("/") or path.startswith(API_PREFIX)


def check_bearer(authorization: str | None, token: str) -> None:
    """Accept `Bearer <token>` (scheme case-insensitive); raise `ApiUnauthorized` otherwise.

    The comparison is constant-time, and no message repeats what the caller sent.
    """
    if authorization is None or not authorization.strip():
        raise ApiUnauthorized(
            "authorization_missing",
            "this route needs an 'Authorization: Bearer <API token>' header",
        )
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise ApiUnauthorized(
            "authorization_malformed",
            "the Authorization header must have the form 'Bearer <API token>'",
        )
    if not hmac.compare_digest(credentials.encode("utf-8"), token.encode("utf-8")):
        raise ApiUnauthorized("token_mismatch", "the bearer token is not this service's API token")


@web.middleware
async def api_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse any request under `/api/` that lacks the API token, before its handler runs."""
    resource = request.match_info.route.resource
    routed_to_api = resource is not None and is_api_path(resource.canonical)
    if routed_to_api or is_api_path(request.path):
        token = request.config_dict[SETTINGS].api_token
        if token is None:  # create_app refuses this; kept so a misuse fails closed
            raise ApiUnauthorized("api_disabled", "no API token is configured on this service")
        try:
            check_bearer(request.headers.get(hdrs.AUTHORIZATION), token.get_secret_value())
        except ApiUnauthorized as refusal:
            request.app[METRICS].api_refusals.labels(refusal.error).inc()
            log.warning(
                "refused API request from %s to %s: %s",
                printable(request.remote or "?"),
                printable(request.path),
                refusal.error,
            )
            raise
    return await handler(request)
