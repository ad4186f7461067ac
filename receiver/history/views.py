"""`/api/...`: the history API over stored events, streams and push sessions.

Every route here is behind the API token (`receiver.web.auth`, applied to the whole prefix).
Handlers validate parameters with the models in `receiver.history.params`, read through
`receiver.history.sql`, and serialise the models in `receiver.history.models`; the OpenAPI
document is generated from the same models (`receiver.web.openapi`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from aiohttp import web
from pydantic import BaseModel, Field

from receiver.errors import ApiNotFound, StorageUnavailable
from receiver.history import pg_sql as pg_history
from receiver.history import sql as history
from receiver.history.cursors import CursorCodec, Position
from receiver.history.models import (
    Event,
    EventList,
    EventPending,
    Session,
    SessionList,
    StreamList,
)
from receiver.history.params import (
    EventQuery,
    NoParams,
    Params,
    Query,
    SessionQuery,
    StreamQuery,
    parse_query,
    validate_query,
)
from receiver.history.roles import SESSION_ROLES
from receiver.keys import SETTINGS
from receiver.storage.context import FOLDER, get_reader
from receiver.storage.inbox import unfolded_seq
from receiver.storage.postgres.context import get_postgres
from receiver.storage.selection import Text
from receiver.web.openapi import Method, Operation, Response, document
from receiver.web.responses import ApiErrorBody


class EventPath(Params):
    id: Annotated[str, Field(min_length=1, max_length=200, description="Event id (UUIDv7).")]


class StreamPath(Params):
    stream_id: Annotated[Text, Field(description="Stream name.")]


async def list_events(request: web.Request) -> web.Response:
    query = parse_query(EventQuery, request.query)
    codec = _codec(request)
    after = _decode(codec, "events", query, (0,))
    position = int(after[0]) if after is not None else None
    postgres = get_postgres(request)
    if postgres is not None:
        page = await pg_history.list_events(postgres.pool, query, position)
    else:
        page = await history.list_events(get_reader(request), query, position)
    next_cursor = _encode(codec, "events", query, page.after)
    return _json(EventList(events=page.items, next_cursor=next_cursor))


# How long `GET /api/events/{id}` waits for the fold to reach an acknowledged callback.
FOLD_WAIT_SECONDS: Final = 2.0


async def get_event(request: web.Request) -> web.Response:
    """The event; for an id acknowledged but not folded yet, fold up to it first (or, after a
    burst, answer 202 pending): an id the service handed out is never a 404."""
    parse_query(NoParams, request.query)
    path = validate_query(EventPath, request.match_info)
    postgres = get_postgres(request)
    if postgres is not None:  # committed before its 200: nothing to wait for
        return _json(await pg_history.get_event(postgres.pool, path.id))
    reader = get_reader(request)
    try:
        return _json(await history.get_event(reader, path.id))
    except ApiNotFound:
        seq = await unfolded_seq(reader, path.id)
        if seq is None:
            # Folded since the first look (a fold stores and removes atomically), or unknown.
            return _json(await history.get_event(reader, path.id))
    try:
        async with asyncio.timeout(FOLD_WAIT_SECONDS):
            await request.config_dict[FOLDER].fold_through(seq)
    except (TimeoutError, StorageUnavailable):
        pending = EventPending(
            id=path.id,
            status="pending",
            message="acknowledged and on disk, not yet folded into history; retry shortly",
        )
        response = _json(pending)
        response.set_status(202)
        response.headers["Retry-After"] = "1"
        return response
    return _json(await history.get_event(reader, path.id))


async def list_streams(request: web.Request) -> web.Response:
    query = parse_query(StreamQuery, request.query)
    codec = _codec(request)
    after = _decode(codec, "streams", query, (0,))
    position = int(after[0]) if after is not None else None
    postgres = get_postgres(request)
    if postgres is not None:
        page = await pg_history.list_streams(postgres.pool, query, position)
    else:
        page = await history.list_streams(get_reader(request), query, position)
    next_cursor = _encode(codec, "streams", query, page.after)
    return _json(StreamList(streams=page.items, next_cursor=next_cursor))


async def list_sessions(request: web.Request) -> web.Response:
    query = parse_query(SessionQuery, request.query)
    path = validate_query(StreamPath, request.match_info)
    postgres = get_postgres(request)
    if postgres is not None:
        stream = await pg_history.find_stream(
            postgres.pool, path.stream_id, query.domain, query.app_name
        )
    else:
        stream = await history.find_stream(
            get_reader(request), path.stream_id, query.domain, query.app_name
        )
    codec = _codec(request)
    # The cursor is bound to the stream as well as to the filters.
    scope = f"sessions:{stream.id}"
    after = _decode(codec, scope, query, (0.0, 0))
    position = (float(after[0]), int(after[1])) if after is not None else None
    if postgres is not None:
        page = await pg_history.list_sessions(postgres.pool, stream, query, position)
    else:
        page = await history.list_sessions(get_reader(request), stream, query, position)
    next_cursor = _encode(codec, scope, query, page.after)
    sessions = await _with_roles(request, stream, page.items)
    return _json(SessionList(stream=stream.ref(), sessions=sessions, next_cursor=next_cursor))


async def _with_roles(
    request: web.Request, stream: history.StreamKey, sessions: list[Session]
) -> list[Session]:
    """Main/backup for the open sessions, while the stream has more than one (ask Tencent)."""
    lookup = request.config_dict.get(SESSION_ROLES)
    if lookup is None or not any(s.state == "live" for s in sessions):
        return sessions
    postgres = get_postgres(request)
    if postgres is not None:
        open_sessions = await postgres.pool.fetchval(
            "SELECT open_sessions FROM streams WHERE id = $1", stream.id
        )
    else:
        rows = await get_reader(request).execute_fetchall(
            "SELECT open_sessions FROM streams WHERE id = ?", (stream.id,)
        )
        open_sessions = next(iter(rows))[0] if rows else None
    if open_sessions is None or open_sessions < 2:
        return sessions
    roles = await lookup.roles(stream.domain, stream.app_name, stream.stream_id)
    return [
        s.model_copy(update={"role": roles[s.sequence]})
        if s.state == "live" and s.sequence in roles
        else s
        for s in sessions
    ]


def _codec(request: web.Request) -> CursorCodec:
    token = request.config_dict[SETTINGS].api_token
    if token is None:  # pragma: no cover - create_app refuses to start without one
        raise RuntimeError("no API token configured")
    return CursorCodec(token.get_secret_value())


def _decode(codec: CursorCodec, scope: str, query: Query, shape: Position) -> Position | None:
    if query.cursor is None:
        return None
    return codec.decode(query.cursor, scope, query.fingerprint(), shape)


def _encode(codec: CursorCodec, scope: str, query: Query, after: Position | None) -> str | None:
    return None if after is None else codec.encode(scope, query.fingerprint(), after)


def _json(model: BaseModel) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


_BAD_REQUEST: Final = Response(
    "A parameter or the cursor is not acceptable; `message` names it.", ApiErrorBody
)
_UNAUTHORIZED: Final = Response(
    "No `Authorization: Bearer <API token>`, or the wrong token.",
    ApiErrorBody,
    headers={"WWW-Authenticate": 'The scheme to use: Bearer realm="receiver".'},
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTES: Final[tuple[tuple[Method, str, Handler, str, Operation], ...]] = (
    (
        "GET",
        "/api/events",
        list_events,
        "api_events",
        Operation(
            summary="List stored events",
            description="Newest stored first (`order=asc`: oldest first). Filters combine "
            "with AND; `kind` may be repeated. Pages continue with `next_cursor`: events "
            "stored meanwhile never repeat or shift a page.",
            tag="events",
            query=EventQuery,
            secured=True,
            responses={
                200: Response("A page of events.", EventList),
                400: _BAD_REQUEST,
                401: _UNAUTHORIZED,
            },
        ),
    ),
    (
        "GET",
        "/api/events/{id}",
        get_event,
        "api_event",
        Operation(
            summary="One stored event",
            description="Normalised fields, publish status and the raw callback body. Any id "
            "a callback was acknowledged with (`X-Event-Id`) is found: a repeat's id finds the "
            "event it repeats, and one not yet folded into history is folded first.",
            tag="events",
            path=EventPath,
            query=NoParams,
            secured=True,
            responses={
                200: Response("The event.", Event),
                202: Response(
                    "Acknowledged, not folded into history yet (after a burst); retry.",
                    EventPending,
                    headers={"Retry-After": "Seconds to wait before asking again."},
                ),
                400: _BAD_REQUEST,
                401: _UNAUTHORIZED,
                404: Response("No event has this id.", ApiErrorBody),
            },
        ),
    ),
    (
        "GET",
        "/api/streams",
        list_streams,
        "api_streams",
        Operation(
            summary="List streams and their state",
            description="One row per (domain, app_name, stream_id). `state=live` lists what "
            "is pushing now: decided by push session `sequence` and event times, so a "
            "stream-end that arrived before its push-begin still counts as ended.",
            tag="streams",
            query=StreamQuery,
            secured=True,
            responses={
                200: Response("A page of streams.", StreamList),
                400: _BAD_REQUEST,
                401: _UNAUTHORIZED,
            },
        ),
    ),
    (
        "GET",
        "/api/streams/{stream_id}/sessions",
        list_sessions,
        "api_stream_sessions",
        Operation(
            summary="Push sessions of one stream",
            description="Begin/end pairs matched by `sequence`, latest start first, each with "
            "the recordings, snapshots, moderation hits and push exceptions that fall in it.",
            tag="streams",
            path=StreamPath,
            query=SessionQuery,
            secured=True,
            responses={
                200: Response("A page of push sessions.", SessionList),
                400: _BAD_REQUEST,
                401: _UNAUTHORIZED,
                404: Response("No event is stored for this stream.", ApiErrorBody),
            },
        ),
    ),
)


def setup_routes(app: web.Application) -> None:
    for method, path, handler, name, operation in ROUTES:
        app.router.add_route(method, path, handler, name=name)
        document(app, method, path, operation)
