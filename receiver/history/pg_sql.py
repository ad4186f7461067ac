"""History queries on PostgreSQL: the same answers as `receiver.history.sql`, in PostgreSQL's SQL.

Kept apart from the SQLite module on purpose: the two dialects differ in placeholders (`$1`),
index hints (SQLite's `INDEXED BY`; PostgreSQL's planner picks from statistics) and the hour
indexes SQLite needs for time windows, so no SQL text is shared by accident. What a row means is
shared: rows are selected with the same columns and turned into models by the same functions
(`event_from_row`), and pages are keyset pages on the same keys.

Pages on several replicas: events are listed in `seq` order, and a replica may commit a lower
seq just after another committed a higher one in another partition; a client paging in ascending
order past that point does not see the late one. One stream's listing is exact: its partition
commits in seq order (docs/scaling.md, "Storage order across replicas").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from receiver.errors import ApiNotFound
from receiver.events.kinds import kind_of
from receiver.history.models import Event, Session, Stream
from receiver.history.params import EventQuery, SessionQuery, StreamQuery
from receiver.history.sql import (
    CATEGORY_OF_KIND,
    EVENT_COLUMNS,
    NO_EVENT,
    Page,
    Sql,
    StreamKey,
    event_from_row,
    prefixed,
    session_windows,
    sessions_from_rows,
    stream_from_row,
    stream_key,
)

if TYPE_CHECKING:
    import asyncpg

_GET_EVENT: Final = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"
    f" UNION ALL SELECT {EVENT_COLUMNS} FROM events"
    " WHERE id = (SELECT event_id FROM event_aliases WHERE id = $1) LIMIT 1"
)


async def get_event(pool: asyncpg.Pool[Any], event_id: str) -> Event:
    """The event with this id (an alias finds the event it repeats, as on SQLite)."""
    row = await pool.fetchrow(_GET_EVENT, event_id)
    if row is None:
        raise ApiNotFound("event_not_found", f"no event with id {event_id!r} is stored")
    return event_from_row(row)


def events_page_sql(query: EventQuery, after: int | None) -> Sql:
    """The page of events `query` selects, continuing after storage position `after`."""
    desc = query.order == "desc"
    conditions: list[str] = []
    params: list[object] = []

    def where(condition: str, value: object | None = None) -> None:
        if value is None:
            conditions.append(condition)
        else:
            params.append(value)
            conditions.append(condition.replace("?", f"${len(params)}"))

    kinds = list(dict.fromkeys(query.kind)) if query.kind else None
    if query.event_type is not None:
        implied = kind_of(query.event_type)
        kinds = [implied] if kinds is None or implied in kinds else []
        where("event_type = ?", query.event_type)
    if kinds is not None:
        where("kind = ANY(?::text[])", kinds)
    for column in ("domain", "app_name", "stream_id"):
        value = getattr(query, column)
        if value is not None:
            where(f"{column} = ?", value)
    for column, low, high in (
        ("event_time", query.since, query.until),
        ("received_at", query.received_since, query.received_until),
    ):
        if low is not None:
            where(f"{column} >= ?", low)
        if high is not None:
            where(f"{column} < ?", high)
    if query.published is not None:
        where("published_at IS NOT NULL" if query.published else "published_at IS NULL")
    if query.source is not None:
        where("source = ?", query.source)
    if after is not None:
        where("seq < ?" if desc else "seq > ?", after)
    params.append(query.limit + 1)  # one more than asked: tells whether another page exists
    filters = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "DESC" if desc else "ASC"
    return Sql(
        f"SELECT {EVENT_COLUMNS} FROM events{filters}"
        f" ORDER BY seq {direction} LIMIT ${len(params)}",
        tuple(params),
    )


async def list_events(
    pool: asyncpg.Pool[Any], query: EventQuery, after: int | None = None
) -> Page[Event]:
    shown, more = await _page(pool, events_page_sql(query, after), query.limit, "seq")
    return Page([event_from_row(row) for row in shown], more)


# --- streams ----------------------------------------------------------------------------------

_STREAM_COLUMNS: Final = (
    "s.id, s.domain, s.app_name, s.stream_id, s.state, s.sessions, s.open_sessions, s.last_begin,"
    " s.last_end, le.payload AS end_payload, p.sequence AS current_sequence,"
    " CASE WHEN s.state = 'live' THEN cb.source ELSE le.source END AS state_source,"
    " (SELECT json_build_object('events', coalesce(sum(k.events), 0),"
    "   'last', max(k.last_received_at),"
    "   'kinds', coalesce(json_object_agg(k.kind, k.events), '{}'::json))::text"
    "  FROM stream_kinds AS k"
    "  WHERE k.domain = s.domain AND k.app_name = s.app_name AND k.stream_id = s.stream_id)"
    " AS counts"
)
_STREAM_JOINS: Final = (
    " LEFT JOIN push_sessions AS p ON p.id = s.current_session"
    " LEFT JOIN events AS le ON le.seq = s.last_end_seq"
    " LEFT JOIN events AS cb ON cb.seq = p.begin_seq"
)


def streams_page_sql(query: StreamQuery, after: int | None) -> Sql:
    desc = query.order == "desc"
    conditions: list[str] = []
    params: list[object] = []
    for column in ("state", "domain", "app_name", "stream_id"):
        value = getattr(query, column)
        if value is not None:
            params.append(value)
            conditions.append(f"s.{column} = ${len(params)}")
    if after is not None:
        params.append(after)
        conditions.append(f"s.id {'<' if desc else '>'} ${len(params)}")
    params.append(query.limit + 1)
    filters = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "DESC" if desc else "ASC"
    text = (
        f"SELECT {_STREAM_COLUMNS} FROM streams AS s{_STREAM_JOINS}{filters}"
        f" ORDER BY s.id {direction} LIMIT ${len(params)}"
    )
    return Sql(text, tuple(params))


async def list_streams(
    pool: asyncpg.Pool[Any], query: StreamQuery, after: int | None = None
) -> Page[Stream]:
    shown, more = await _page(pool, streams_page_sql(query, after), query.limit, "id")
    return Page([stream_from_row(row) for row in shown], more)


async def find_stream(
    pool: asyncpg.Pool[Any], stream_id: str, domain: str | None, app_name: str | None
) -> StreamKey:
    """The one stream called `stream_id` (narrowed by domain/app); 404 or 400 otherwise."""
    conditions = ["stream_id = $1"]
    params: list[object] = [stream_id]
    for column, value in (("domain", domain), ("app_name", app_name)):
        if value is not None:
            params.append(value)
            conditions.append(f"{column} = ${len(params)}")
    rows = await pool.fetch(
        "SELECT id, domain, app_name, stream_id"
        f" FROM streams WHERE {' AND '.join(conditions)} ORDER BY id LIMIT 6",
        *params,
    )
    return stream_key(stream_id, rows)


# --- push sessions ----------------------------------------------------------------------------

_SESSION_COLUMNS: Final = (
    "p.id, p.sequence, p.begin_seq, p.begin_time, p.end_seq, p.end_time,"
    " p.push_duration_ms, p.started_at, b.id AS begin_event_id, e.id AS end_event_id,"
    " b.source AS begin_source, e.source AS end_source,"
    " e.payload AS end_payload,"
    " (SELECT n.started_at FROM push_sessions AS n"
    "  WHERE n.stream = p.stream AND (n.started_at, n.id) > (p.started_at, p.id)"
    "  ORDER BY n.started_at, n.id LIMIT 1) AS next_started_at"
)
_SESSION_JOINS: Final = (
    " LEFT JOIN events AS b ON b.seq = p.begin_seq LEFT JOIN events AS e ON e.seq = p.end_seq"
)


def sessions_page_sql(stream: int, desc: bool, limit: int, after: tuple[float, int] | None) -> Sql:
    """A page of push sessions, newest first, each with the start of the session after it."""
    condition = ""
    params: list[object] = [stream]
    if after is not None:
        condition = f" AND (p.started_at, p.id) {'<' if desc else '>'} ($2, $3)"
        params.extend(after)
    params.append(limit + 1)
    direction = "DESC" if desc else "ASC"
    text = (
        f"SELECT {_SESSION_COLUMNS} FROM push_sessions AS p{_SESSION_JOINS}"
        f" WHERE p.stream = $1{condition}"
        f" ORDER BY p.started_at {direction}, p.id {direction} LIMIT ${len(params)}"
    )
    return Sql(text, tuple(params))


def session_items_sql(
    stream: StreamKey, windows: Sequence[tuple[int, float, float]], items: int
) -> Sql:
    """What each session holds, per kind of a category (as `receiver.history.sql`'s): a row
    with the number of its events (`total`), then rows of its first `items` events by event
    time (seq breaking ties)."""
    params: list[object] = [
        [w[0] for w in windows],
        [w[1] for w in windows],
        [w[2] for w in windows],
        list(CATEGORY_OF_KIND),
        list(CATEGORY_OF_KIND.values()),
        stream.stream_id,
    ]
    identity = "{alias}.stream_id = $6"
    for column, value in (("domain", stream.domain), ("app_name", stream.app_name)):
        if value:
            params.append(value)
            identity += f" AND {{alias}}.{column} = ${len(params)}"
        else:
            identity += f" AND {{alias}}.{column} IS NULL"
    params.append(items)

    def walk(alias: str) -> str:
        return (
            f"FROM events AS {alias} WHERE {identity.format(alias=alias)}"
            f" AND {alias}.kind = c.kind AND {alias}.event_time >= w.lo"
            f" AND {alias}.event_time < w.hi"
        )

    text = (
        "WITH w(session, lo, hi) AS"
        " (SELECT * FROM UNNEST($1::bigint[], $2::float8[], $3::float8[])),"
        " c(kind, category) AS (SELECT * FROM UNNEST($4::text[], $5::text[]))"
        f" SELECT w.session AS session, c.category AS category,"
        f" (SELECT count(*) {walk('n')}) AS total, {NO_EVENT}"
        " FROM w CROSS JOIN c"
        f" UNION ALL SELECT w.session, c.category, NULL, {prefixed('x', EVENT_COLUMNS)}"
        f" FROM w CROSS JOIN c CROSS JOIN LATERAL (SELECT {EVENT_COLUMNS} {walk('e')}"
        f" ORDER BY e.event_time, e.seq LIMIT ${len(params)}) AS x"
    )
    return Sql(text, tuple(params))


async def list_sessions(
    pool: asyncpg.Pool[Any],
    stream: StreamKey,
    query: SessionQuery,
    after: tuple[float, int] | None = None,
) -> Page[Session]:
    desc = query.order == "desc"
    sql = sessions_page_sql(stream.id, desc, query.limit, after)
    shown, more = await _page(pool, sql, query.limit, "started_at", "id")
    items: list[Any] = []
    if shown:
        items_sql = session_items_sql(stream, session_windows(shown), query.items)
        items = list(await pool.fetch(items_sql.text, *items_sql.params))
    return Page(sessions_from_rows(shown, items, query.items), more)


async def _page(
    pool: asyncpg.Pool[Any], sql: Sql, limit: int, *columns: str
) -> tuple[list[Any], tuple[int | float, ...] | None]:
    """The rows of one page (the query asks for one more than `limit`), and the sort key to
    continue after, or None when there is no further page."""
    rows = list(await pool.fetch(sql.text, *sql.params))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], tuple(last[column] for column in columns)
