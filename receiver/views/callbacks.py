"""`POST /callbacks` and `POST /callbacks/{kind}`: where CSS delivers events.

The hot path: the handler answers its own errors (with the middleware's `error_response`) and
times itself, so the middleware does not wrap it (see `receiver.middlewares`).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from receiver.errors import BodyTimeout, PayloadTooLarge, Refusal
from receiver.keys import METRICS, SETTINGS, get_ingestor
from receiver.kinds import PATH_KINDS
from receiver.middlewares import error_response

# CSS only looks at the status; the body is what Tencent suggests replying.
_OK = b'{"code":0}'


async def receive_callback(request: web.Request) -> web.StreamResponse:
    """Store the event, then answer 200 `{"code":0}`; a refusal is answered, counted, logged."""
    started = time.perf_counter()
    ingestor = get_ingestor(request.app)
    path_kind = request.match_info.get("kind")
    try:
        raw = await _read_body(request)
        token = request.query.get("token") if ingestor.wants_token else None
        await ingestor.ingest(raw, token=token, path_kind=path_kind)
        response: web.StreamResponse = web.Response(body=_OK, content_type="application/json")
    except Refusal as refusal:
        ingestor.count_refusal(refusal, peer=request.remote, path_kind=path_kind)
        response = error_response(request, refusal)
    except Exception as exc:
        response = error_response(request, exc)
    request.app[METRICS].observe_request(
        request.match_info.route.resource, time.perf_counter() - started
    )
    return response


async def _read_body(request: web.Request) -> bytes:
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    try:
        if request.content.is_eof():
            # The whole body arrived with the headers (the usual case): no wait, no timer needed.
            return await request.read()
        async with asyncio.timeout(settings.body_read_timeout_seconds):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(limit) from None
    except TimeoutError:
        raise BodyTimeout(settings.body_read_timeout_seconds) from None


def setup_routes(app: web.Application) -> None:
    kinds = "|".join(PATH_KINDS)
    app.router.add_post("/callbacks", receive_callback, name="callbacks")
    app.router.add_post(f"/callbacks/{{kind:{kinds}}}", receive_callback, name="callbacks_kind")
