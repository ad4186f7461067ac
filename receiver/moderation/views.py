"""`GET /api/actions`: every moderation action, behind the API token like every `/api` route."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from receiver.history.cursors import CursorCodec
from receiver.history.params import parse_query
from receiver.keys import CLOCK, SETTINGS
from receiver.moderation.listing import ActionList, ActionQuery, list_actions, pg_list_actions
from receiver.storage.context import get_reader
from receiver.storage.postgres.context import get_postgres
from receiver.web.openapi import Operation, Response, document
from receiver.web.responses import ApiErrorBody

_SCOPE: Final = "actions"


async def get_actions(request: web.Request) -> web.Response:
    query = parse_query(ActionQuery, request.query)
    codec = _codec(request)
    after = None
    if query.cursor is not None:
        after = int(codec.decode(query.cursor, _SCOPE, query.fingerprint(), (0,))[0])
    now = request.config_dict[CLOCK]()
    postgres = get_postgres(request)
    if postgres is not None:
        actions, last = await pg_list_actions(postgres.pool, query, after, now)
    else:
        actions, last = await list_actions(get_reader(request), query, after, now)
    cursor = None if last is None else codec.encode(_SCOPE, query.fingerprint(), (last,))
    body = ActionList(actions=actions, next_cursor=cursor)
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def _codec(request: web.Request) -> CursorCodec:
    token = request.config_dict[SETTINGS].api_token
    if token is None:  # pragma: no cover - create_app refuses to start without one
        raise RuntimeError("no API token configured")
    return CursorCodec(token.get_secret_value())


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/actions", get_actions, name="api_actions")
    document(
        app,
        "GET",
        "/api/actions",
        Operation(
            summary="List moderation actions",
            description="What the moderation policy did (or, in a dry run, would have done) "
            "on moderation callbacks, and `receiver tencent resume`: newest first, with the "
            "API's answer and whether the stream's end confirmed it (docs/moderation.md).",
            tag="moderation",
            query=ActionQuery,
            secured=True,
            responses={
                200: Response("A page of actions.", ActionList),
                400: Response("A parameter or the cursor is not acceptable.", ApiErrorBody),
                401: Response(
                    "No `Authorization: Bearer <API token>`, or the wrong token.",
                    ApiErrorBody,
                    headers={"WWW-Authenticate": 'The scheme to use: Bearer realm="receiver".'},
                ),
            },
        ),
    )
