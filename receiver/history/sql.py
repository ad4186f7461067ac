"""History queries: events, streams and push sessions, read from SQLite through indexes.

Every listing is a keyset page: rows are ordered by an immutable key (the event's storage `seq`,
the stream's first-seen id, the session's start and id) and a page continues strictly after the
last key served, so events stored while a client pages neither repeat nor push rows out of its
view. Each query names its index explicitly (`INDEXED BY`): the plan does not depend on
statistics SQLite may not have, and a missing index is an error instead of a silent table scan.
A first page reads about as much as its rows, whatever the filter matches: time windows go
through the hour indexes (`receiver.history.hours`). The SQL builders are pure functions, so the
benchmark and the tests can EXPLAIN what the routes run; `*_by_*_sql` fetch a page's rows by
key, the benchmark's baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, TypeVar

import aiosqlite
import orjson

from receiver.errors import ApiBadRequest, ApiNotFound
from receiver.events.kinds import SESSION_CATEGORIES, kind_of
from receiver.history import hours
from receiver.history.end_reasons import end_reason
from receiver.history.models import (
    Event,
    Session,
    SessionCounts,
    Stream,
    StreamRef,
)
from receiver.history.params import EventQuery, SessionQuery, StreamQuery
from receiver.times import utc

T = TypeVar("T")


class Sql(NamedTuple):
    text: str
    params: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the sort key to continue after (None on the last page)."""

    items: list[T]
    after: tuple[int | float, ...] | None


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A stream as the `streams` table knows it ('' where the events had no domain/app)."""

    id: int
    domain: str
    app_name: str
    stream_id: str

    def ref(self) -> StreamRef:
        return StreamRef(
            domain=self.domain or None, app_name=self.app_name or None, stream_id=self.stream_id
        )


EVENT_COLUMNS: Final = (
    "seq, id, event_type, kind, domain, app_name, stream_id, event_time, sequence, received_at,"
    " path_kind, schema_error, published_at, publish_attempts, payload, source"
)

CATEGORY_OF_KIND: Final = {
    kind: category for category, kinds in SESSION_CATEGORIES.items() for kind in kinds
}
# The event columns of a `session_items_sql` row that counts rather than lists.
NO_EVENT: Final = ", ".join(f"NULL AS {column.strip()}" for column in EVENT_COLUMNS.split(","))
# Later than any stored event time: the upper bound of the newest session's window.
_FOREVER: Final = 1e300


# --- events -----------------------------------------------------------------------------------


def events_page_sql(query: EventQuery, after: int | None) -> Sql:
    """The page of events `query` selects, continuing after storage position `after`."""
    desc = query.order == "desc"
    direction = "DESC" if desc else "ASC"
    fetch = query.limit + 1  # one more than asked: tells whether another page exists
    kinds = _kinds(query)
    if kinds == []:  # kind and event_type contradict each other
        return Sql(f"SELECT {EVENT_COLUMNS} FROM events WHERE 0", ())
    conditions: list[str] = []
    params: list[object] = []

    def where(condition: str, *values: object) -> None:
        conditions.append(condition)
        params.extend(values)

    if query.event_type is not None:
        where("event_type = ?", query.event_type)
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

    # Time windows (receiver/history/hours.py): an event-time window is merged hour by hour,
    # unless one stream is asked for (its own index is narrower); every other window bounds the
    # walk by the window's first and last seq.
    ctes: list[hours.Fragment] = []
    event_window = query.since is not None or query.until is not None
    merged = event_window and query.stream_id is None
    spans = [
        (name, index, low, high)
        for name, index, low, high, wanted in (
            ("event", hours.EVENT_HOURS, query.since, query.until, event_window and not merged),
            ("arrival", hours.RECEIVED_HOURS, query.received_since, query.received_until,
             query.received_since is not None or query.received_until is not None),
        )
        if wanted
    ]  # fmt: skip
    for name, index, low, high in spans:
        ctes.append(hours.hours_cte(f"{name}_hours", index, low, high))
        ctes.append(hours.span_cte(f"{name}_span", f"{name}_hours", index, low, high))
        where(f"seq >= (SELECT lo FROM {name}_span)")
        where(f"seq <= (SELECT hi FROM {name}_span)")

    if merged:
        index = hours.KIND_EVENT_HOURS if kinds else hours.EVENT_HOURS
        ctes.append(hours.hours_cte("window_hours", index, query.since, query.until, kinds or ()))
        ctes.append(
            hours.merge_cte(
                "page", "window_hours", index, query.until, conditions, params, desc, fetch
            )
        )
        inner = "SELECT seq FROM page WHERE seq IS NOT NULL"
        inner_params: list[object] = []
    elif kinds and len(kinds) > 1 and query.stream_id is None:
        # Several kinds: one ordered, limited walk per kind, merged. A single `kind IN (...)`
        # would sort every event of those kinds to find the first page.
        arms = []
        inner_params = []
        for kind in kinds:
            arms.append(
                "SELECT seq FROM (SELECT seq FROM events INDEXED BY events_kind_seq"
                f" WHERE {' AND '.join(['kind = ?', *conditions])}"
                f" ORDER BY seq {direction} LIMIT ?)"
            )
            inner_params.extend([kind, *params, fetch])
        inner = f"{' UNION ALL '.join(arms)} ORDER BY 1 {direction} LIMIT ?"
        inner_params.append(fetch)
    else:
        if kinds is not None:
            conditions.insert(0, f"kind IN ({', '.join('?' * len(kinds))})")
            params[:0] = kinds
        index_name = _events_index(query, kinds)
        indexed = f" INDEXED BY {index_name}" if index_name else ""
        filters = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        inner = f"SELECT seq FROM events{indexed}{filters} ORDER BY seq {direction} LIMIT ?"
        inner_params = [*params, fetch]
    # The inner select reads only index columns where it can; whole rows (with payloads) are
    # read for the page alone. One statement, so the page is one consistent snapshot.
    prefix = f"WITH RECURSIVE {', '.join(cte.text for cte in ctes)} " if ctes else ""
    text = (
        f"{prefix}SELECT {EVENT_COLUMNS} FROM events"
        f" WHERE seq IN ({inner}) ORDER BY seq {direction}"
    )
    return Sql(text, (*(value for cte in ctes for value in cte.params), *inner_params))


def _kinds(query: EventQuery) -> list[str] | None:
    """The kinds to read (None: any); `event_type` narrows to its kind so its index applies."""
    kinds = list(dict.fromkeys(query.kind)) if query.kind else None
    if query.event_type is not None:
        implied = kind_of(query.event_type)
        kinds = [implied] if kinds is None or implied in kinds else []
    return kinds


def _events_index(query: EventQuery, kinds: list[str] | None) -> str | None:
    """The index that bounds a walk in storage order best, when no event-time window is merged
    (a time window's seq span, when there is one, bounds whichever index this is)."""
    if query.stream_id is not None:
        return "events_stream"  # (stream_id, seq): one stream, already in order
    if kinds:
        return "events_kind_seq"  # (kind, seq): in order, one page
    if query.published is False:
        return "events_unpublished"  # the outbox's partial index: unpublished rows only
    return None  # storage order itself (the primary key), bounded by a window's span if any


async def list_events(
    conn: aiosqlite.Connection, query: EventQuery, after: int | None = None
) -> Page[Event]:
    shown, more = await _page(conn, events_page_sql(query, after), query.limit, "seq")
    return Page([event_from_row(row) for row in shown], more)


def events_by_seq_sql(seqs: Sequence[int], desc: bool) -> Sql:
    """The events with these storage positions, in page order: what a page costs once its rows
    are known (the benchmark's baseline for every event listing)."""
    marks = ", ".join("?" for _ in seqs)
    direction = "DESC" if desc else "ASC"
    return Sql(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq IN ({marks}) ORDER BY seq {direction}",
        tuple(seqs),
    )


async def get_event(conn: aiosqlite.Connection, event_id: str) -> Event:
    """The event with this id; for the id of a callback that repeated a stored event (an
    alias, `migrations/0005_inbox.sql`), the event it repeats."""
    rows = await conn.execute_fetchall(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"
        f" UNION ALL SELECT {EVENT_COLUMNS} FROM events"
        " WHERE id = (SELECT event_id FROM event_aliases WHERE id = ?) LIMIT 1",
        (event_id, event_id),
    )
    if not rows:
        raise ApiNotFound("event_not_found", f"no event with id {event_id!r} is stored")
    return event_from_row(next(iter(rows)))


def event_from_row(row: Any) -> Event:
    """An `Event` from a row selected with `EVENT_COLUMNS`."""
    payload = orjson.loads(row["payload"])
    return Event(
        id=row["id"],
        event_type=row["event_type"],
        kind=row["kind"],
        domain=row["domain"],
        app_name=row["app_name"],
        stream_id=row["stream_id"],
        event_time=utc(row["event_time"]),
        sequence=row["sequence"],
        received_at=utc(row["received_at"]),
        path_kind=row["path_kind"],
        schema_error=row["schema_error"],
        published=row["published_at"] is not None,
        published_at=utc(row["published_at"]),
        publish_attempts=row["publish_attempts"],
        payload=payload if isinstance(payload, dict) else {"value": payload},
        source=row["source"],
    )


# --- streams ----------------------------------------------------------------------------------

# Every column of a stream as listed; the joins it needs are `_STREAM_JOINS`.
_STREAM_COLUMNS: Final = (
    "s.id, s.domain, s.app_name, s.stream_id, s.state, s.sessions, s.open_sessions, s.last_begin,"
    " s.last_end, le.payload AS end_payload, p.sequence AS current_sequence,"
    " iif(s.state = 'live', cb.source, le.source) AS state_source,"
    " (SELECT json_object('events', sum(k.events), 'last', max(k.last_received_at),"
    "   'kinds', json_group_object(k.kind, k.events)) FROM stream_kinds AS k"
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
            conditions.append(f"s.{column} = ?")
            params.append(value)
    if after is not None:
        conditions.append("s.id < ?" if desc else "s.id > ?")
        params.append(after)
    if query.stream_id is not None:
        index = "streams_stream_id"
    elif query.state is not None:
        index = "streams_state"
    elif query.domain is not None:
        index = "streams_domain"  # (domain, id): in order; the app, if asked for, filters
    else:
        index = None
    indexed = f" INDEXED BY {index}" if index else ""
    filters = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "DESC" if desc else "ASC"
    text = (
        f"SELECT {_STREAM_COLUMNS} FROM streams AS s{indexed}{_STREAM_JOINS}{filters}"
        f" ORDER BY s.id {direction} LIMIT ?"
    )
    return Sql(text, (*params, query.limit + 1))


def streams_by_id_sql(ids: Sequence[int], desc: bool) -> Sql:
    """These streams, as a page lists them, by primary key (the benchmark's baseline)."""
    marks = ", ".join("?" for _ in ids)
    direction = "DESC" if desc else "ASC"
    text = (
        f"SELECT {_STREAM_COLUMNS} FROM streams AS s{_STREAM_JOINS}"
        f" WHERE s.id IN ({marks}) ORDER BY s.id {direction}"
    )
    return Sql(text, tuple(ids))


async def list_streams(
    conn: aiosqlite.Connection, query: StreamQuery, after: int | None = None
) -> Page[Stream]:
    shown, more = await _page(conn, streams_page_sql(query, after), query.limit, "id")
    return Page([stream_from_row(row) for row in shown], more)


def stream_from_row(row: Any) -> Stream:
    """A `Stream` from a row selected by `streams_page_sql` or `streams_by_id_sql`."""
    counts = orjson.loads(row["counts"])
    end = EndFacts.of(row["end_payload"])
    return Stream(
        domain=row["domain"] or None,
        app_name=row["app_name"] or None,
        stream_id=row["stream_id"],
        state=row["state"],
        state_source=row["state_source"] if row["state"] != "unknown" else None,
        current_sequence=row["current_sequence"],
        last_begin=utc(row["last_begin"]),
        last_end=utc(row["last_end"]),
        end_code=end.code,
        end_reason=end_reason(end.code) if row["last_end"] is not None else None,
        end_message=end.message,
        sessions=row["sessions"],
        open_sessions=row["open_sessions"],
        events=counts["events"],
        event_counts=dict(sorted(counts["kinds"].items())),
        last_received_at=utc(counts["last"]),
    )


# --- push sessions ----------------------------------------------------------------------------


async def find_stream(
    conn: aiosqlite.Connection, stream_id: str, domain: str | None, app_name: str | None
) -> StreamKey:
    """The one stream called `stream_id` (narrowed by domain/app); 404 or 400 otherwise."""
    conditions = ["stream_id = ?"]
    params: list[object] = [stream_id]
    if domain is not None:
        conditions.append("domain = ?")
        params.append(domain)
    if app_name is not None:
        conditions.append("app_name = ?")
        params.append(app_name)
    rows = list(
        await conn.execute_fetchall(
            "SELECT id, domain, app_name, stream_id"
            f" FROM streams INDEXED BY streams_stream_id WHERE {' AND '.join(conditions)}"
            " ORDER BY id LIMIT 6",
            params,
        )
    )
    return stream_key(stream_id, rows)


def stream_key(stream_id: str, rows: Sequence[Any]) -> StreamKey:
    """The one stream of `rows` (id, domain, app_name, stream_id); 404 or 400 otherwise."""
    if not rows:
        raise ApiNotFound("stream_not_found", f"no events are stored for stream {stream_id!r}")
    if len(rows) > 1:
        where = ", ".join(f"{r['domain'] or '-'}/{r['app_name'] or '-'}" for r in rows[:5])
        raise ApiBadRequest(
            "ambiguous_stream",
            f"stream {stream_id!r} exists under several domains/app names ({where}); "
            "add the domain and app_name parameters",
        )
    row = rows[0]
    return StreamKey(row["id"], row["domain"], row["app_name"], row["stream_id"])


# Every column of a session as listed, with the start of the session after it (its window's
# end); the joins it needs are `_SESSION_JOINS`.
_SESSION_COLUMNS: Final = (
    "p.id, p.sequence, p.begin_seq, p.begin_time, p.end_seq, p.end_time,"
    " p.push_duration_ms, p.started_at, b.id AS begin_event_id, e.id AS end_event_id,"
    " b.source AS begin_source, e.source AS end_source,"
    " e.payload AS end_payload,"
    " (SELECT n.started_at FROM push_sessions AS n INDEXED BY push_sessions_recent"
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
        condition = (
            " AND (p.started_at, p.id) < (?, ?)" if desc else " AND (p.started_at, p.id) > (?, ?)"
        )
        params.extend(after)
    direction = "DESC" if desc else "ASC"
    text = (
        f"SELECT {_SESSION_COLUMNS}"
        f" FROM push_sessions AS p INDEXED BY push_sessions_recent{_SESSION_JOINS}"
        f" WHERE p.stream = ?{condition}"
        f" ORDER BY p.started_at {direction}, p.id {direction} LIMIT ?"
    )
    return Sql(text, (*params, limit + 1))


def sessions_by_id_sql(ids: Sequence[int], desc: bool) -> Sql:
    """These sessions, as a page lists them, by primary key (the benchmark's baseline)."""
    marks = ", ".join("?" for _ in ids)
    direction = "DESC" if desc else "ASC"
    text = (
        f"SELECT {_SESSION_COLUMNS} FROM push_sessions AS p{_SESSION_JOINS}"
        f" WHERE p.id IN ({marks}) ORDER BY p.started_at {direction}, p.id {direction}"
    )
    return Sql(text, tuple(ids))


def session_items_sql(
    stream: StreamKey, windows: Sequence[tuple[int, float, float]], items: int
) -> Sql:
    """What each session holds, per kind of a category: a row with the number of its events
    (`total`), then rows of its first `items` events by event time (seq breaking ties).

    `windows` are (session id, start, next session's start). Each (session, kind) is one walk of
    (stream, domain, app, kind, event_time), whose entries end with the seq: counting reads the
    index alone, and listing reads `items` entries and their rows, however many events the
    session holds. `sessions_from_rows` merges the kinds of a category.
    """
    window_rows = ", ".join("(?, ?, ?)" for _ in windows)
    category_rows = ", ".join("(?, ?)" for _ in CATEGORY_OF_KIND)
    domain = "IS NULL" if not stream.domain else "= ?"
    app_name = "IS NULL" if not stream.app_name else "= ?"

    def walk(alias: str) -> str:
        return (
            f"FROM events AS {alias} INDEXED BY events_stream_kind_time"
            f" WHERE {alias}.stream_id = ? AND {alias}.domain {domain}"
            f" AND {alias}.app_name {app_name} AND {alias}.kind = c.kind"
            f" AND {alias}.event_time >= w.lo AND {alias}.event_time < w.hi"
        )

    text = (
        f"WITH w(session, lo, hi) AS (VALUES {window_rows}),"
        f" c(kind, category) AS (VALUES {category_rows})"
        f" SELECT w.session AS session, c.category AS category,"
        f" (SELECT count(*) {walk('n')}) AS total, {NO_EVENT}"
        " FROM w CROSS JOIN c"
        f" UNION ALL SELECT w.session, c.category, NULL, {prefixed('x', EVENT_COLUMNS)}"
        " FROM w CROSS JOIN c JOIN events AS x"
        f" ON x.seq IN (SELECT e.seq {walk('e')} ORDER BY e.event_time, e.seq LIMIT ?)"
    )
    identity = [stream.stream_id, *(value for value in (stream.domain, stream.app_name) if value)]
    params: list[object] = [value for window in windows for value in window]
    params.extend(value for pair in CATEGORY_OF_KIND.items() for value in pair)
    params.extend(identity)
    params.extend([*identity, items])
    return Sql(text, tuple(params))


async def list_sessions(
    conn: aiosqlite.Connection,
    stream: StreamKey,
    query: SessionQuery,
    after: tuple[float, int] | None = None,
) -> Page[Session]:
    desc = query.order == "desc"
    sql = sessions_page_sql(stream.id, desc, query.limit, after)
    shown, more = await _page(conn, sql, query.limit, "started_at", "id")
    items: list[Any] = []
    if shown:
        items_sql = session_items_sql(stream, session_windows(shown), query.items)
        items = list(await conn.execute_fetchall(items_sql.text, items_sql.params))
    return Page(sessions_from_rows(shown, items, query.items), more)


def session_windows(rows: Sequence[Any]) -> list[tuple[int, float, float]]:
    """(session id, start, next session's start) of session rows: what each session holds."""
    return [
        (
            r["id"],
            r["started_at"],
            r["next_started_at"] if r["next_started_at"] is not None else _FOREVER,
        )
        for r in rows
    ]


def sessions_from_rows(rows: Sequence[Any], items: Sequence[Any], shown: int) -> list[Session]:
    """Sessions from their rows and the rows of `session_items_sql`: per category, the totals
    of its kinds added up, and the first `shown` events of its kinds by event time and seq."""
    totals: dict[int, dict[str, int]] = {
        r["id"]: dict.fromkeys(SESSION_CATEGORIES, 0) for r in rows
    }
    found: dict[int, dict[str, list[Any]]] = {
        r["id"]: {category: [] for category in SESSION_CATEGORIES} for r in rows
    }
    for row in items:
        if row["total"] is not None:
            totals[row["session"]][row["category"]] += row["total"]
        else:
            found[row["session"]][row["category"]].append(row)
    sessions = []
    for r in rows:
        listed = {
            category: [
                event_from_row(row)
                for row in sorted(candidates, key=lambda row: (row["event_time"], row["seq"]))[
                    :shown
                ]
            ]
            for category, candidates in found[r["id"]].items()
        }
        sessions.append(_session(r, listed, totals[r["id"]]))
    return sessions


def _session(row: Any, found: dict[str, list[Event]], totals: dict[str, int]) -> Session:
    """A session as stored: its state is its own (live until its own stream end is stored), and
    its start is where the history triggers placed it (its push begin, else its end minus
    push_duration), so the listing, its order and its cursor agree."""
    ended = row["end_seq"] is not None
    end = EndFacts.of(row["end_payload"])
    duration: float | None = None
    if ended:
        if row["push_duration_ms"] is not None:
            duration = row["push_duration_ms"] / 1000
        else:
            duration = max(0.0, row["end_time"] - row["started_at"])
    return Session(
        sequence=row["sequence"],
        state="ended" if ended else "live",
        start=utc(row["started_at"]),
        end=utc(row["end_time"]),
        duration_seconds=duration,
        end_code=end.code,
        end_reason=end_reason(end.code) if ended else None,
        end_message=end.message,
        begin_event_id=row["begin_event_id"],
        end_event_id=row["end_event_id"],
        begin_source=row["begin_source"],
        end_source=row["end_source"],
        counts=SessionCounts(**totals),
        **found,
    )


@dataclass(frozen=True, slots=True)
class EndFacts:
    """What a stream-end body says about why the push ended.

    Read leniently, like the event models: numbers may arrive as strings, and a value of the
    wrong type is treated as absent rather than failing the whole answer. (`push_duration` is
    not read here: it places the session, so the writer stores it in a column for the triggers.)
    """

    code: int | None = None
    message: str | None = None

    @classmethod
    def of(cls, payload: str | None) -> EndFacts:
        if payload is None:
            return cls()
        body = orjson.loads(payload)
        if not isinstance(body, dict):
            return cls()
        message = body.get("errmsg")
        return cls(
            code=_whole(body.get("errcode")),
            message=message if isinstance(message, str) else None,
        )


def _whole(value: object) -> int | None:
    """An integer from an int, an integral float or a string of digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


# --- shared -----------------------------------------------------------------------------------


async def _page(
    conn: aiosqlite.Connection, sql: Sql, limit: int, *columns: str
) -> tuple[list[Any], tuple[int | float, ...] | None]:
    """The rows of one page (the query asks for one more than `limit`), and the sort key to
    continue after, or None when there is no further page."""
    rows = list(await conn.execute_fetchall(sql.text, sql.params))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], tuple(last[column] for column in columns)


def prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))
