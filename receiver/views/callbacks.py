"""`POST /callbacks` and `POST /callbacks/{kind}`: where CSS delivers events."""

from __future__ import annotations

import asyncio

from aiohttp import web

from receiver.errors import BodyTimeout, Overloaded, PayloadTooLarge, Refusal
from receiver.keys import BODY_BUDGET, METRICS, SETTINGS, get_ingestor
from receiver.kinds import PATH_KINDS

# CSS only looks at the status; the body is what Tencent suggests replying.
_OK = b'{"code":0}'


async def receive_callback(request: web.Request) -> web.Response:
    """Store the event, then answer 200 `{"code":0}`; refusals raise `ReceiverError`."""
    ingestor = get_ingestor(request.app)
    path_kind = request.match_info.get("kind")
    try:
        raw = await _read_body(request)
        token = request.query.get("token") if ingestor.wants_token else None
        await ingestor.ingest(raw, token=token, path_kind=path_kind)
    except Refusal as refusal:
        ingestor.count_refusal(refusal, peer=request.remote, path_kind=path_kind)
        raise
    except Overloaded:
        request.app[METRICS].callback("unknown", "overloaded")
        raise
    return web.Response(body=_OK, content_type="application/json")


async def _read_body(request: web.Request) -> bytes:
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    if request.content.is_eof():
        # The whole body arrived with the headers (the usual case): no wait, no timer needed.
        return await request.read()
    # Still arriving: hold its size (the limit, if chunked) of the body budget meanwhile.
    reserved = request.content_length if request.content_length is not None else limit
    try:
        with request.app[BODY_BUDGET].reserve(reserved):
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
