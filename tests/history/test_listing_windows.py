"""Time windows and other bounded listings: the same rows as a plain scan, at a page's cost.

Event listings are in storage order whatever their filters; time windows are read through the
hour indexes of migration 0006 (`receiver/history/hours.py`). These tests check that the pages
are exactly what a plain scan in storage order returns (late events, ties on event time, hour
boundaries, clock steps, cursors across pages), and that the work of a first page does not grow
with the number of rows its filter matches: SQLite's virtual-machine steps are counted (a
progress handler), which is deterministic where a timing is not.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from receiver.events.kinds import EVENT_TYPE_BY_KIND
from receiver.history import sql as history
from receiver.history.params import EventQuery, StreamQuery
from receiver.storage.connect import connect
from receiver.storage.ids import EventIds
from receiver.storage.migrations import apply_migrations
from receiver.storage.rows import INSERT_EVENT
from receiver.times import MAX_UNIX_SECONDS
from tests.support.css import porn, push_begin, record, snapshot
from tests.support.helpers import get, post

HOUR, DAY = 3600, 86_400
T0 = 1_703_728_800  # 2023-12-28T02:00:00Z, on an hour
KINDS = ("snapshot", "record", "porn", "push_exception", "stream_begin", "stream_end")


def _row(
    ids: EventIds,
    n: int,
    kind: str,
    *,
    stream: str | None,
    domain: str | None,
    event_time: float | None,
    received_at: float,
) -> tuple[Any, ...]:
    return (
        ids.new(), EVENT_TYPE_BY_KIND[kind], kind, f"t:{n}", domain, "live" if domain else None,
        stream, event_time, f"q{n % 7}" if kind.startswith("stream_") else None, received_at,
        None, None, "{}", None,
    )  # fmt: skip


async def _database(path: Path, rows: list[tuple[Any, ...]]) -> aiosqlite.Connection:
    conn = await connect(path)
    await apply_migrations(conn)
    await conn.execute("BEGIN")
    await conn.executemany(INSERT_EVENT, rows)
    await conn.execute("COMMIT")
    return conn


# --- the rows are a plain scan's ---------------------------------------------------------------


def _awkward_rows(seed: int) -> list[tuple[Any, ...]]:
    """Three days of events as they really come: mostly on time, some late by hours or days
    (retries, recordings), ties on event time, times exactly on the hour, no time at all,
    absurd times, and a stretch where the receiver's clock stepped back two hours."""
    rng = random.Random(seed)
    ids = EventIds()
    rows: list[tuple[Any, ...]] = []
    arrival = float(T0)
    for n in range(3000):
        arrival += rng.expovariate(1 / 86)
        received = arrival - 2 * HOUR if 1500 <= n < 1700 else arrival
        roll = rng.random()
        event_time: float | None
        if roll < 0.70:
            event_time = float(int(received - rng.uniform(0, 30)))
        elif roll < 0.80:
            event_time = float(int(received - rng.uniform(HOUR, 2 * DAY)))  # late
        elif roll < 0.85:
            event_time = None
        elif roll < 0.92:
            event_time = float(int(received) // HOUR * HOUR)  # on the hour
        elif roll < 0.95:
            event_time = rng.choice((0.0, 5.0, 1e10, 253_402_300_799.0))
        else:
            event_time = rows[-1][7] if rows else None  # the same time as the previous event
        stream = rng.choice(("a", "b", "c", "d", None))
        domain = rng.choice(("one.example.com", "two.example.com")) if stream else None
        rows.append(
            _row(ids, n, rng.choice(KINDS), stream=stream, domain=domain,
                 event_time=event_time, received_at=received)
        )  # fmt: skip
    return rows


def _bound(rng: random.Random, times: list[float]) -> float:
    """A window edge: an event's own time (inclusive/exclusive edges), an hour, or anything."""
    choice = rng.random()
    if choice < 0.4:
        return rng.choice(times)
    if choice < 0.7:
        return float((int(rng.choice(times)) // HOUR + rng.randint(-1, 1)) * HOUR)
    return float(int(rng.uniform(T0 - 3 * DAY, T0 + 4 * DAY)))


def _window(rng: random.Random, times: list[float]) -> tuple[float | None, float | None]:
    low, high = sorted(min(_bound(rng, times), MAX_UNIX_SECONDS - 1) for _ in range(2))
    high = max(high, low + 1)
    shape = rng.random()
    if shape < 0.15:
        return low, None
    if shape < 0.3:
        return None, high
    return low, high


def _random_query(rng: random.Random, times: list[float], received: list[float]) -> EventQuery:
    fields: dict[str, Any] = {"order": rng.choice(("asc", "desc")), "limit": rng.choice((1, 3, 50))}
    if rng.random() < 0.7:
        fields["since"], fields["until"] = _window(rng, times)
    if rng.random() < 0.35:
        fields["received_since"], fields["received_until"] = _window(rng, received)
    if rng.random() < 0.4:
        fields["kind"] = rng.sample(KINDS, rng.choice((1, 1, 2, 3)))
    if rng.random() < 0.1:
        fields["event_type"] = rng.choice((0, 1, 200))
    if rng.random() < 0.2:
        fields["stream_id"] = rng.choice(("a", "b", "zz"))
    if rng.random() < 0.1:
        fields["domain"] = "two.example.com"
    if rng.random() < 0.15:
        fields["published"] = rng.choice((True, False))
    return EventQuery(**fields)


def _plain_scan(query: EventQuery) -> tuple[str, list[object]]:
    """The rows `query` selects, by reading every event in storage order: no index, no tricks."""
    clauses, params = query.conditions()
    if query.published is not None:
        clauses.append("published_at IS NOT NULL" if query.published else "published_at IS NULL")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    direction = "DESC" if query.order == "desc" else "ASC"
    return f"SELECT id FROM events NOT INDEXED{where} ORDER BY seq {direction}", params  # noqa: S608


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("windows") / "awkward.db"

    async def build() -> None:
        conn = await _database(path, _awkward_rows(seed=13))
        await conn.execute("BEGIN")
        await conn.execute("UPDATE events SET published_at = received_at WHERE seq % 3 = 0")
        await conn.execute("COMMIT")
        await conn.close()

    asyncio.run(build())
    return path


async def test_every_page_is_what_a_plain_scan_returns(awkward: Path) -> None:
    conn = await connect(awkward)
    try:
        times = [r[0] for r in await conn.execute_fetchall("SELECT event_time FROM events")]
        times = [t for t in times if t is not None]
        received = [r[0] for r in await conn.execute_fetchall("SELECT received_at FROM events")]
        rng = random.Random(2024)
        for _ in range(300):
            query = _random_query(rng, times, received)
            text, params = _plain_scan(query)
            expected = [r[0] for r in await conn.execute_fetchall(text, params)]
            listed: list[str] = []
            after: int | None = None
            for _page in range(4):  # the first pages, each continuing from the last one's cursor
                page = await history.list_events(conn, query, after)
                listed += [event.id for event in page.items]
                if page.after is None:
                    assert listed == expected, query
                    break
                after = int(page.after[0])
            assert listed == expected[: len(listed)], query
    finally:
        await conn.close()


async def test_a_window_over_kinds_lists_late_events_and_ties_in_storage_order(client: Any) -> None:
    """The window [T0+30 min, T0+2 h) over several kinds, stored out of event-time order."""
    base = T0 + HOUR  # an hour boundary inside the window
    await post(
        client,
        snapshot("w", base + 10),  # 1
        porn("w", base + 10),  # 2: the same event time as 1, another kind
        snapshot("w", T0 + 45 * 60),  # 3: the window's first hour
        snapshot("w", base + HOUR),  # 4: on the window's end (excluded)
        record("w", base + 2 * HOUR, base + 3 * HOUR),  # 5: after the window
        snapshot("w", base),  # 6: on an hour, and late: stored after 4 and 5
        push_begin("w", "S", T0 + 31 * 60),  # 7: late too, the first hour again
    )
    everything = await get(client, "/api/events?order=asc")
    seq_of = {e["id"]: n for n, e in enumerate(everything["events"], start=1)}
    for order, expected in (("desc", [7, 6, 3, 2, 1]), ("asc", [1, 2, 3, 6, 7])):
        for limit in (1, 2, 5):
            listed: list[int] = []
            cursor = ""
            while True:
                page = await get(
                    client,
                    f"/api/events?since={T0 + 1800}&until={base + HOUR}&order={order}"
                    f"&limit={limit}{cursor}",
                )
                listed += [seq_of[e["id"]] for e in page["events"]]
                if page["next_cursor"] is None:
                    break
                cursor = f"&cursor={page['next_cursor']}"
            assert listed == expected, (order, limit)
    kinds = await get(client, f"/api/events?since={base}&until={base + 11}&kind=snapshot&kind=porn")
    assert [seq_of[e["id"]] for e in kinds["events"]] == [6, 2, 1]
    on_the_end = await get(client, f"/api/events?since={base + HOUR}")
    assert [seq_of[e["id"]] for e in on_the_end["events"]] == [5, 4]


async def test_contradicting_kind_and_event_type_match_nothing_whatever_else_is_asked(
    client: Any,
) -> None:
    """`event_type` names another kind than `kind`: an empty page, whatever the other filters
    (with `published=false` the query used to be unplannable: a 500)."""
    await post(client, snapshot("w", T0), push_begin("w", "S", T0 + 1))
    for more in ("", f"&since={T0 - HOUR}", "&published=false", f"&until={T0 + HOUR}&stream_id=w"):
        page = await get(client, f"/api/events?kind=snapshot&event_type=1{more}")
        assert page == {"events": [], "next_cursor": None}
    page = await get(client, "/api/events?kind=stream_begin&event_type=1&published=false")
    assert [e["kind"] for e in page["events"]] == ["stream_begin"]


# --- a first page costs a page, whatever the window holds ----------------------------------------


def _two_days(ids: EventIds) -> list[tuple[Any, ...]]:
    """Day one: 2,400 events on 150 streams of one domain; day three: ten times as many, on
    1,500 streams of another. Stream `both` has 10% of each day's events."""
    rng = random.Random(5)
    rows = []
    n = 0
    for day, count, streams, domain in ((0, 2_400, 150, "one.example.com"),
                                        (2, 24_000, 1_500, "two.example.com")):  # fmt: skip
        for i in range(count):
            at = T0 + day * DAY + i * DAY / count
            stream = "both" if i % 10 == 0 else f"{domain[:3]}-{i % streams}"
            kind = rng.choice(("snapshot", "snapshot", "record", "porn", "push_exception"))
            rows.append(
                _row(ids, n, kind, stream=stream, domain=domain,
                     event_time=float(int(at - rng.uniform(0, 20))), received_at=at)
            )  # fmt: skip
            n += 1
    return rows


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("windows") / "two_days.db"

    async def build() -> None:
        conn = await _database(path, _two_days(EventIds()))
        await conn.close()

    asyncio.run(build())
    return path


def _steps(conn: sqlite3.Connection, sql: history.Sql) -> int:
    """Virtual-machine instructions (in hundreds) SQLite runs for `sql`."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        rows = conn.execute(sql.text, sql.params).fetchall()
    finally:
        conn.set_progress_handler(None, 100)
    assert len(rows) == 101  # a full first page, and the row that says there are more
    return counted[0]


def _day(day: int, offset: int) -> tuple[float, float]:
    start = T0 + day * DAY + offset
    return start, start + DAY - HOUR


Listing = Callable[[tuple[float, float]], history.Sql]
LISTINGS: dict[str, Listing] = {
    "any kind, event-time window": lambda w: history.events_page_sql(
        EventQuery(since=w[0], until=w[1]), None
    ),
    "any kind, event-time window, oldest first": lambda w: history.events_page_sql(
        EventQuery(since=w[0], until=w[1], order="asc"), None
    ),
    "one kind, event-time window": lambda w: history.events_page_sql(
        EventQuery(kind=["record"], since=w[0], until=w[1]), None
    ),
    "two kinds, event-time window": lambda w: history.events_page_sql(
        EventQuery(kind=["record", "porn"], since=w[0], until=w[1]), None
    ),
    "one stream, event-time window": lambda w: history.events_page_sql(
        EventQuery(stream_id="both", since=w[0], until=w[1]), None
    ),
    "any kind, arrival window": lambda w: history.events_page_sql(
        EventQuery(received_since=w[0], received_until=w[1]), None
    ),
    "one kind, arrival window": lambda w: history.events_page_sql(
        EventQuery(kind=["snapshot"], received_since=w[0], received_until=w[1]), None
    ),
    "streams of one domain": lambda w: history.streams_page_sql(
        StreamQuery(domain="one.example.com" if w[0] < T0 + DAY else "two.example.com"), None
    ),
}


@pytest.mark.parametrize(
    ("offset", "bound"), [(0, 1.3), (HOUR // 2, 2.5)], ids=["on the hour", "half past"]
)
@pytest.mark.parametrize("name", LISTINGS)
def test_a_first_page_costs_the_same_whatever_its_window_holds(
    two_days: Path, name: str, offset: int, bound: float
) -> None:
    """Day three holds ten times as many matching rows as day one: a listing that sorted or
    skipped them would do several times the work; a bounded one does about the same. A window
    that starts or ends inside an hour also reads that hour's entries outside it (the index
    cannot tell them apart by anything cheaper), which grows with how busy that hour is."""
    conn = sqlite3.connect(two_days)
    try:
        sparse, dense = (_steps(conn, LISTINGS[name](_day(day, offset))) for day in (0, 2))
    finally:
        conn.close()
    print(name, offset, sparse, dense, round(dense / sparse, 2))
    assert max(sparse, dense) <= bound * min(sparse, dense), (sparse, dense)
