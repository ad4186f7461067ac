"""History listing benchmark: the first page of every listing, against fetching its rows by key.

    python -m bench.history                      # 1,000,000 events across 10,000 streams
    python -m bench.history --events 10000 --streams 100 --runs 5    # a quick smoke run

It builds a temporary database with the real migrations and bulk-loads synthetic CSS events
(push sessions with snapshots, recordings, moderation hits and push exceptions; some stream-ends
stored before their push-begins, as retries do) through the service's own INSERT statement in
large transactions, as the fold stores them, so the history triggers and indexes run exactly as
in production.

What each listing is compared with (the issue's target: the first page within 3x of fetching the
same rows by primary key in SQL, within 5x through HTTP):

- SQL: the statements the route runs (the `receiver.history.sql` builders; for sessions, finding
  the stream, its page of sessions and their events) against fetching the rows that page returned
  by primary key in one statement with the same select list (`events_by_seq_sql`,
  `streams_by_id_sql`, `sessions_by_id_sql` followed by the sessions' events by seq). Both run
  on one aiosqlite connection, the listing first, so the baseline reads pages the listing has
  just brought into the cache: the comparison errs against the listing.
- HTTP: a GET of the listing through the real app (`receiver.app.create_app`) on a loopback
  socket, client included, against the SQL primary-key fetch of the same rows plus building
  their response JSON the way the route does (response models, cursor, `model_dump_json`). There
  is no route that fetches a page of rows by key, and fetching each row through
  `/api/events/{id}` would measure a hundred requests rather than one page, so the baseline is
  the work any route answering with those rows must do; the listing's side alone pays for
  parsing, authentication and the socket.

Each run picks fresh parameters (a random stream, a random 1-day window) and times the four
fetches of the same page; a listing's ratio is the median of its per-run ratios, since the
machine is shared and noisy. `python -m bench.history` also prints EXPLAIN QUERY PLAN of each
listing. Before measuring, it loads a sample into a database with the core schema alone, to show
what the history triggers and indexes cost the fold, which stores every event.
`history_section` adds the same figures to the combined benchmark's report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiosqlite
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from pydantic import BaseModel, SecretStr

from bench.report import Report
from receiver.app import create_app
from receiver.history import sql as history
from receiver.history.cursors import CursorCodec
from receiver.history.models import EventList, SessionList, StreamList
from receiver.history.params import EventQuery, SessionQuery, StreamQuery
from receiver.settings import Settings
from receiver.storage.connect import connect
from receiver.storage.migrations import _statements, apply_migrations, load_migrations
from receiver.storage.rows import INSERT_EVENT
from testbed.history_rows import BASE_TIME, SPAN_SECONDS, Plan, Row, synthetic_rows

SQL_TARGET, HTTP_TARGET = 3.0, 5.0
DAY = 86_400
API_TOKEN = "bench-history-api-token"
T = TypeVar("T")

# --- loading ----------------------------------------------------------------------------------


async def load(conn: aiosqlite.Connection, rows: Sequence[Row], batch: int = 50_000) -> float:
    """Insert `rows` in big transactions through the writer's statement; returns seconds."""
    started = time.perf_counter()
    for offset in range(0, len(rows), batch):
        await conn.execute("BEGIN IMMEDIATE")
        await conn.executemany(INSERT_EVENT, rows[offset : offset + batch])
        await conn.execute("COMMIT")
    return time.perf_counter() - started


# The migrations that build the history tables, triggers and indexes; every other one is core.
HISTORY_MIGRATIONS = frozenset(
    {"history", "stream_state_by_open_sessions", "history_listing_indexes"}
)
# Indexes on `events` that the core migration made for history queries alone (the outbox, the
# dedupe and the fold need none of them); later migrations replace some (0006).
HISTORY_INDEXES_IN_CORE = ("events_stream", "events_kind_time", "events_received_at")


async def core_only_database(path: Path) -> aiosqlite.Connection:
    """A database as the fold would write it without history: the core migrations, minus the
    history indexes the first of them made.

    The writer's statement also fills `events.push_duration_ms`, a column the history migration
    adds (the triggers read it), so the core database gets that column, bare.
    """
    conn = await connect(path)
    for migration in load_migrations():
        if migration.name not in HISTORY_MIGRATIONS:
            for statement in _statements(migration.sql):
                await conn.execute(statement)
    for index in HISTORY_INDEXES_IN_CORE:
        await conn.execute(f"DROP INDEX IF EXISTS {index}")
    await conn.execute("ALTER TABLE events ADD COLUMN push_duration_ms INTEGER")
    return conn


async def _migrated(path: Path) -> aiosqlite.Connection:
    conn = await connect(path)
    await apply_migrations(conn)
    return conn


async def _timed_load(opening: Awaitable[aiosqlite.Connection], rows: Sequence[Row]) -> float:
    conn = await opening
    try:
        return await load(conn, rows)
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class WriteCost:
    events: int
    core_seconds: float
    history_seconds: float

    @property
    def ratio(self) -> float:
        return self.history_seconds / self.core_seconds


async def write_cost(directory: Path, sample: Sequence[Row], rounds: int = 3) -> WriteCost:
    """Load `sample` into fresh core-only and full databases, alternating; medians of `rounds`."""
    core: list[float] = []
    full: list[float] = []
    for n in range(rounds):
        core.append(await _timed_load(core_only_database(directory / f"core-{n}.db"), sample))
        full.append(await _timed_load(_migrated(directory / f"full-{n}.db"), sample))
    return WriteCost(len(sample), statistics.median(core), statistics.median(full))


# --- what one run of one listing does ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page as the listing's SQL returned it (rows shown, and whether another page exists)."""

    rows: list[Any]
    more: bool
    extra: list[Any] = field(default_factory=list)  # sessions: the rows of their events


@dataclass(frozen=True, slots=True)
class Trial:
    """One page fetched four ways: its listing SQL, its rows by key, over HTTP, and by key plus
    the response the route would build from them."""

    listing: Callable[[], Awaitable[Fetched]]
    by_key: Callable[[Fetched], Awaitable[object]]
    respond: Callable[[Fetched], Awaitable[bytes]]
    url: str
    ids: Callable[[Fetched], list[object]]  # what the HTTP answer must list, in order
    ids_of_answer: Callable[[Any], list[object]]
    statements: Callable[[], Awaitable[list[history.Sql]]]  # what the listing runs, to EXPLAIN


@dataclass
class Data:
    """Facts about the loaded database the listings draw their parameters from."""

    conn: aiosqlite.Connection
    codec: CursorCodec
    streams: list[str]
    max_seq: int


async def _rows(conn: aiosqlite.Connection, sql: history.Sql) -> list[Any]:
    return list(await conn.execute_fetchall(sql.text, sql.params))


def _query_string(model: Any, cursor: str | None) -> str:
    params = model.model_dump(exclude_defaults=True, exclude={"cursor"})
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        pairs.extend(
            (name, repr(one) if isinstance(one, float) else str(one))
            for one in (value if isinstance(value, list) else [value])
        )
    if cursor is not None:
        pairs.append(("cursor", cursor))
    return urlencode(pairs)


def events_trial(data: Data, query: EventQuery, after: int | None) -> Trial:
    return _page_trial(
        data,
        query,
        after,
        scope="events",
        key="seq",
        name="id",
        sql=history.events_page_sql(query, after),
        by_key_sql=history.events_by_seq_sql,
        respond_with=lambda rows, cursor: EventList(
            events=[history.event_from_row(row) for row in rows], next_cursor=cursor
        ),
    )


def streams_trial(data: Data, query: StreamQuery, after: int | None) -> Trial:
    return _page_trial(
        data,
        query,
        after,
        scope="streams",
        key="id",
        name="stream_id",
        sql=history.streams_page_sql(query, after),
        by_key_sql=history.streams_by_id_sql,
        respond_with=lambda rows, cursor: StreamList(
            streams=[history.stream_from_row(row) for row in rows], next_cursor=cursor
        ),
    )


def _page_trial(
    data: Data,
    query: EventQuery | StreamQuery,
    after: int | None,
    *,
    scope: str,
    key: str,
    name: str,
    sql: history.Sql,
    by_key_sql: Callable[[list[int], bool], history.Sql],
    respond_with: Callable[[list[Any], str | None], BaseModel],
) -> Trial:
    """A listing of `scope` (events, streams) paged by `key`, whose HTTP answer lists `name`."""
    conn, desc = data.conn, query.order == "desc"

    async def listing() -> Fetched:
        rows = await _rows(conn, sql)
        return Fetched(rows[: query.limit], len(rows) > query.limit)

    async def by_key(page: Fetched) -> list[Any]:
        return await _rows(conn, by_key_sql([r[key] for r in page.rows], desc))

    async def respond(page: Fetched) -> bytes:
        rows = await by_key(page)
        codec = CursorCodec(API_TOKEN)
        cursor = codec.encode(scope, query.fingerprint(), (rows[-1][key],)) if page.more else None
        return respond_with(rows, cursor).model_dump_json().encode()

    cursor = None if after is None else data.codec.encode(scope, query.fingerprint(), (after,))
    return Trial(
        listing,
        by_key,
        respond,
        f"/api/{scope}?{_query_string(query, cursor)}",
        lambda page: [r[name] for r in page.rows],
        lambda answer: [item[name] for item in answer[scope]],
        lambda: _const([sql]),
    )


def sessions_trial(data: Data, stream_id: str, query: SessionQuery) -> Trial:
    """The sessions route: find the stream, a page of its sessions, then their events."""
    conn, desc = data.conn, query.order == "desc"
    key: list[history.StreamKey] = []

    async def listing() -> Fetched:
        found = await history.find_stream(conn, stream_id, query.domain, query.app_name)
        key[:] = [found]
        rows = await _rows(conn, history.sessions_page_sql(found.id, desc, query.limit, None))
        shown = rows[: query.limit]
        items: list[Any] = []
        if shown:
            windows = history.session_windows(shown)
            items = await _rows(conn, history.session_items_sql(found, windows, query.items))
        return Fetched(shown, len(rows) > query.limit, items)

    async def by_key(page: Fetched) -> tuple[list[Any], list[Any]]:
        sessions = await _rows(conn, history.sessions_by_id_sql([r["id"] for r in page.rows], desc))
        seqs = [r["seq"] for r in page.extra if r["total"] is None]
        events = await _rows(conn, history.events_by_seq_sql(seqs, False)) if seqs else []
        return sessions, events

    async def respond(page: Fetched) -> bytes:
        sessions, events = await by_key(page)
        # Which session and category each event is listed under, and how many each holds, is
        # known from the listing: the baseline fetches the rows, not the grouping.
        by_seq = {row["seq"]: row for row in events}
        items = [
            r
            if r["total"] is not None
            else {**dict(by_seq[r["seq"]]), **{k: r[k] for k in ("session", "category", "total")}}
            for r in page.extra
        ]
        codec = CursorCodec(API_TOKEN)
        last = sessions[-1] if sessions else None
        cursor = (
            codec.encode(
                f"sessions:{key[0].id}", query.fingerprint(), (last["started_at"], last["id"])
            )
            if page.more and last is not None
            else None
        )
        answer = SessionList(
            stream=key[0].ref(),
            sessions=history.sessions_from_rows(sessions, items, query.items),
            next_cursor=cursor,
        )
        return answer.model_dump_json().encode()

    async def statements() -> list[history.Sql]:
        page = await listing()
        found = key[0]
        sessions = history.sessions_page_sql(found.id, desc, query.limit, None)
        windows = history.session_windows(page.rows) or [(0, 0.0, 1.0)]
        return [sessions, history.session_items_sql(found, windows, query.items)]

    return Trial(
        listing,
        by_key,
        respond,
        f"/api/streams/{quote(stream_id, safe='')}/sessions?{_query_string(query, None)}",
        lambda page: [r["begin_event_id"] or r["end_event_id"] for r in page.rows],
        lambda answer: [s["begin_event_id"] or s["end_event_id"] for s in answer["sessions"]],
        statements,
    )


# --- the listings -----------------------------------------------------------------------------

Maker = Callable[[Data, random.Random], Awaitable[Trial]]


def _window(rng: random.Random) -> tuple[float, float]:
    since = float(int(BASE_TIME + rng.uniform(0, SPAN_SECONDS - DAY)))
    return since, since + DAY


async def _second_page(data: Data, query: EventQuery) -> Trial:
    """The page after the first one: `after` is the last seq the first page served."""
    first = await events_trial(data, query, None).listing()
    after = first.rows[-1]["seq"] if first.more else None
    return events_trial(data, query, after)


def _events(make: Callable[[random.Random, Data], EventQuery], second: bool = False) -> Maker:
    async def maker(data: Data, rng: random.Random) -> Trial:
        query = make(rng, data)
        return await _second_page(data, query) if second else events_trial(data, query, None)

    return maker


def _kind_window(
    kinds: list[str], order: str = "desc"
) -> Callable[[random.Random, Data], EventQuery]:
    def make(rng: random.Random, _: Data) -> EventQuery:
        since, until = _window(rng)
        return EventQuery(kind=kinds, since=since, until=until, order=order)

    return make


def _received_window(kinds: list[str]) -> Callable[[random.Random, Data], EventQuery]:
    def make(rng: random.Random, _: Data) -> EventQuery:
        since, until = _window(rng)
        return EventQuery(kind=kinds, received_since=since, received_until=until)

    return make


def _streams(query: StreamQuery, second: bool = False) -> Maker:
    async def maker(data: Data, _: random.Random) -> Trial:
        after = None
        if second:
            first = await streams_trial(data, query, None).listing()
            after = first.rows[-1]["id"] if first.more else None
        return streams_trial(data, query, after)

    return maker


async def _sessions(data: Data, rng: random.Random) -> Trial:
    return sessions_trial(data, rng.choice(data.streams), SessionQuery())


def _stream(rng: random.Random, data: Data) -> str:
    chosen: str = rng.choice(data.streams)
    return chosen


async def _deep_page(data: Data, rng: random.Random) -> Trial:
    return events_trial(data, EventQuery(), rng.randint(1, data.max_seq))


async def _const(value: T) -> T:
    return value


LISTINGS: tuple[tuple[str, Maker], ...] = (
    ("events: newest page, no filter", _events(lambda r, d: EventQuery())),
    ("events: deep page (cursor mid-table)", _deep_page),
    ("events: one kind", _events(lambda r, d: EventQuery(kind=["porn"]))),
    ("events: two kinds", _events(lambda r, d: EventQuery(kind=["record", "push_exception"]))),
    ("events: event_type", _events(lambda r, d: EventQuery(event_type=100))),
    ("events: one kind, second page", _events(lambda r, d: EventQuery(kind=["porn"]), True)),
    ("events: one stream", _events(lambda r, d: EventQuery(stream_id=_stream(r, d)))),
    (
        "events: one stream + kind",
        _events(lambda r, d: EventQuery(stream_id=_stream(r, d), kind=["snapshot"])),
    ),
    (
        "events: domain + app_name",
        _events(lambda r, d: EventQuery(domain="push.example.com", app_name="live")),
    ),
    ("events: 1-day window, any kind", _events(_kind_window([]))),
    ("events: 1-day window, any kind, oldest first", _events(_kind_window([], "asc"))),
    ("events: 1-day window, any kind, second page", _events(_kind_window([]), True)),
    ("events: 1-day window, one kind", _events(_kind_window(["record"]))),
    ("events: 1-day window, one kind, second page", _events(_kind_window(["record"]), True)),
    ("events: 1-day window, two kinds", _events(_kind_window(["record", "porn"]))),
    ("events: 1-day arrival window, any kind", _events(_received_window([]))),
    ("events: 1-day arrival window, one kind", _events(_received_window(["snapshot"]))),
    ("events: unpublished (outbox backlog)", _events(lambda r, d: EventQuery(published=False))),
    ("streams: first page", _streams(StreamQuery())),
    ("streams: second page", _streams(StreamQuery(), True)),
    ("streams: live", _streams(StreamQuery(state="live"))),
    ("streams: live, oldest first", _streams(StreamQuery(state="live", order="asc"))),
    ("streams: one domain", _streams(StreamQuery(domain="push.example.com"))),
    ("sessions of one stream (+ their events)", _sessions),
)


# --- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    name: str
    rows: float  # median rows per page
    sql_ms: float
    pk_ms: float
    sql_ratio: float  # median of per-run listing / by-key ratios
    http_ms: float
    base_ms: float
    http_ratio: float


async def _timed(call: Awaitable[Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call
    return time.perf_counter() - started, result


async def measure(
    name: str, make: Maker, data: Data, http: ClientSession, runs: int, rng: random.Random
) -> Measured:
    sql: list[float] = []
    pk: list[float] = []
    over_http: list[float] = []
    base: list[float] = []
    rows: list[int] = []
    for run in range(runs):
        trial = await make(data, rng)
        if run == 0:  # untimed: the HTTP answer lists the same rows as the SQL
            page = await trial.listing()
            async with http.get(trial.url) as response:
                answer = await response.json()
            if response.status != 200 or trial.ids_of_answer(answer) != trial.ids(page):
                raise RuntimeError(f"{name}: HTTP answered {response.status}, not the SQL's page")
        seconds, page = await _timed(trial.listing())
        sql.append(seconds)
        pk.append((await _timed(trial.by_key(page)))[0])
        seconds, _ = await _timed(_get(http, trial.url))
        over_http.append(seconds)
        base.append((await _timed(trial.respond(page)))[0])
        rows.append(len(page.rows))
    return Measured(
        name,
        statistics.median(rows),
        _ms(statistics.median(sql)),
        _ms(statistics.median(pk)),
        statistics.median(a / b for a, b in zip(sql, pk, strict=True)),
        _ms(statistics.median(over_http)),
        _ms(statistics.median(base)),
        statistics.median(a / b for a, b in zip(over_http, base, strict=True)),
    )


async def _get(http: ClientSession, url: str) -> bytes:
    async with http.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {body[:200]!r}")
        return body


async def single_row(data: Data, runs: int, rng: random.Random) -> float:
    """The old baseline: one event by primary key (ms, median)."""
    sql = f"SELECT {history.EVENT_COLUMNS} FROM events WHERE seq = ?"
    times = [
        (await _timed(data.conn.execute_fetchall(sql, (rng.randint(1, data.max_seq),))))[0]
        for _ in range(runs)
    ]
    return _ms(statistics.median(times))


def _ms(seconds: float) -> float:
    return seconds * 1000


@contextlib.asynccontextmanager
async def serving(database: Path) -> AsyncIterator[ClientSession]:
    """The real app over `database` on a loopback socket, and a client that carries the token."""
    for file in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if file.exists():
            file.chmod(0o600)  # as the service keeps its files; it would warn and fix it
    settings = Settings(
        callback_keys=[SecretStr("bench-history-callback-key")],
        api_token=SecretStr(API_TOKEN),
        database=database,
        host="127.0.0.1",
        amqp_url=None,
        tencent_auto_register=False,
        startup_check_seconds=0,
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession(
            base_url=str(server.make_url("/")),
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as http:
            yield http
    finally:
        await server.close()


# --- the whole run ----------------------------------------------------------------------------


@dataclass
class Results:
    events: int
    streams: int
    live: int
    load_seconds: float | None  # None: an existing database was measured
    cost: WriteCost | None
    single_row_ms: float
    listings: list[Measured]
    plans: dict[str, list[str]]


async def run_benchmark(
    *,
    events: int,
    streams: int,
    runs: int,
    seed: int,
    compare: int = 100_000,
    database: Path | None = None,
    reuse: Path | None = None,
    explain: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> Results:
    """Build (or `reuse`) the database and measure; `database` keeps the one built."""
    with tempfile.TemporaryDirectory(prefix="receiver-bench-") as tmp:
        path = reuse or database or Path(tmp) / "history.db"
        cost: WriteCost | None = None
        seconds: float | None = None
        if reuse is None:
            say(f"generating {events:,} events across {streams:,} streams ...")
            rows = synthetic_rows(Plan(events=events, streams=streams), seed)
            sample = rows[: min(len(rows), compare)]
            say(f"write cost: {len(sample):,} events into core-only and full schemas ...")
            cost = await write_cost(Path(tmp), sample)
        conn = await _migrated(path)
        try:
            if reuse is None:
                say(f"loading {len(rows):,} events ...")
                seconds = await load(conn, rows)
                await conn.execute("PRAGMA optimize")
            data = await _data(conn)
            rng = random.Random(seed + 1)
            say(f"measuring {len(LISTINGS)} listings, {runs} runs each ...")
            async with serving(path) as http:
                measured = [
                    await measure(name, make, data, http, runs, rng) for name, make in LISTINGS
                ]
            single = await single_row(data, max(runs, 20), rng)
            plans = await _plans(data, rng) if explain else {}
            counted = await _one(conn, "SELECT count(*), max(seq) FROM events")
            live = await _one(conn, "SELECT count(*), 0 FROM streams WHERE state = 'live'")
        finally:
            await conn.close()
    return Results(counted[0], len(data.streams), live[0], seconds, cost, single, measured, plans)


async def _data(conn: aiosqlite.Connection) -> Data:
    streams = [r[0] for r in await conn.execute_fetchall("SELECT stream_id FROM streams")]
    _, max_seq = await _one(conn, "SELECT count(*), max(seq) FROM events")
    return Data(conn, CursorCodec(API_TOKEN), streams, max_seq)


async def _one(conn: aiosqlite.Connection, sql: str) -> tuple[int, int]:
    row = next(iter(await conn.execute_fetchall(sql)))
    return int(row[0]), int(row[1] or 0)


async def _plans(data: Data, rng: random.Random) -> dict[str, list[str]]:
    plans: dict[str, list[str]] = {}
    for name, make in LISTINGS:
        lines: list[str] = []
        for sql in await (await make(data, rng)).statements():
            found = await data.conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql.text}", sql.params)
            lines.extend(row[3] for row in found)
        plans[name] = lines
    return plans


# --- output -----------------------------------------------------------------------------------


async def history_section(
    report: Report, *, events: int = 1_000_000, streams: int = 10_000, runs: int = 20, seed: int = 1
) -> None:
    """Build the database, measure every listing, and add one row per listing for SQL and one
    for HTTP, plus the fold's write cost of the history tables and indexes."""
    results = await run_benchmark(events=events, streams=streams, runs=runs, seed=seed)
    report.context["history"] = {
        "events": results.events,
        "streams": results.streams,
        "live_streams": results.live,
        "runs": runs,
        "single_row_pk_ms": results.single_row_ms,
    }
    report.section(
        f"history listings, first page on {results.events:,} events "
        "(ratio = median of per-run listing / same rows by primary key)"
    )
    for m in results.listings:
        report.add(
            f"{m.name} (SQL)", m.sql_ms, "ms",
            ratio=m.sql_ratio, target=f"<= {SQL_TARGET:g}x PK (SQL)", ok=m.sql_ratio <= SQL_TARGET,
        )  # fmt: skip
        report.add(
            f"{m.name} (HTTP)", m.http_ms, "ms",
            ratio=m.http_ratio, target=f"<= {HTTP_TARGET:g}x PK (HTTP)",
            ok=m.http_ratio <= HTTP_TARGET,
        )  # fmt: skip
    cost = results.cost
    if cost is None:  # pragma: no cover - run_benchmark measures it unless reusing a database
        return
    report.add(
        f"fold: {cost.events:,} events with history / core only",
        _ms(cost.history_seconds), "ms", extra=_ms(cost.core_seconds), ratio=cost.ratio,
    )  # fmt: skip


def print_results(results: Results, runs: int, out: Any) -> None:
    print(
        f"\n{results.events:,} events, {results.streams:,} streams ({results.live} live), "
        f"{runs} runs per listing",
        file=out,
    )
    if results.load_seconds is not None:
        print(
            f"loaded at {results.events / results.load_seconds:,.0f} events/s with history",
            file=out,
        )
    cost = results.cost
    if cost is not None:
        print(
            f"write cost of history (fold, {cost.events:,} events): "
            f"{cost.events / cost.core_seconds:,.0f} events/s core schema only, "
            f"{cost.events / cost.history_seconds:,.0f} events/s with history "
            f"({cost.ratio:.2f}x the time)",
            file=out,
        )
    print(
        f"one event by primary key (the old baseline): {results.single_row_ms:.3f} ms\n", file=out
    )
    header = ("listing", "rows", "SQL ms", "PK ms", "SQL x PK", "HTTP ms", "base ms", "HTTP x")
    print(f"{header[0]:<46} " + " ".join(f"{h:>8}" for h in header[1:]), file=out)
    for m in results.listings:
        cells = (
            f"{m.rows:g}",
            f"{m.sql_ms:.3f}",
            f"{m.pk_ms:.3f}",
            f"{m.sql_ratio:.2f}" + ("" if m.sql_ratio <= SQL_TARGET else "!"),
            f"{m.http_ms:.3f}",
            f"{m.base_ms:.3f}",
            f"{m.http_ratio:.2f}" + ("" if m.http_ratio <= HTTP_TARGET else "!"),
        )
        print(f"{m.name:<46} " + " ".join(f"{c:>8}" for c in cells), file=out)
    print(f"(! : above {SQL_TARGET:g}x in SQL or {HTTP_TARGET:g}x over HTTP)", file=out)
    if results.plans:
        print("\nEXPLAIN QUERY PLAN", file=out)
        for name, lines in results.plans.items():
            print(f"  {name}", file=out)
            for line in lines:
                print(f"      {line}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per listing")
    parser.add_argument(
        "--compare", type=int, default=100_000, help="events in the write-cost sample"
    )
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--database", type=Path, help="keep the loaded database here")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="measure a database kept by --database (migrated first; no loading, no write cost)",
    )
    args = parser.parse_args(argv)
    if args.events < args.streams or args.streams < 1:
        parser.error("--events must be at least --streams, and --streams at least 1")
    if args.database is not None and args.database.exists():
        parser.error(f"{args.database} exists: --database names a new file to keep")
    if args.reuse is not None and not args.reuse.is_file():
        parser.error(f"--reuse {args.reuse}: no such database")

    def say(line: str) -> None:
        print(line, file=sys.stdout, flush=True)

    results = asyncio.run(
        run_benchmark(
            events=args.events,
            streams=args.streams,
            runs=args.runs,
            seed=args.seed,
            compare=args.compare,
            database=args.database,
            reuse=args.reuse,
            explain=True,
            say=say,
        )
    )
    print_results(results, args.runs, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
