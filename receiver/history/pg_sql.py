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

from typing import TYPE_CHECKING, Any, Final

from receiver.errors import ApiNotFound
from receiver.events.kinds import kind_of
from receiver.history.models import Event
from receiver.history.params import EventQuery
from receiver.history.sql import EVENT_COLUMNS, Page, Sql, event_from_row

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
    sql = events_page_sql(query, after)
    rows = await pool.fetch(sql.text, *sql.params)
    shown = rows[: query.limit]
    more = (int(shown[-1]["seq"]),) if len(rows) > query.limit else None
    return Page([event_from_row(row) for row in shown], more)
