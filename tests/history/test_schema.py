"""The history tables: kept by triggers, rebuilt by the migration's backfill, read via indexes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from receiver.history import sql as history
from receiver.history.params import EventQuery, SessionQuery, StreamQuery
from receiver.storage.connect import connect
from receiver.storage.migrations import _statements, apply_migrations, load_migrations
from receiver.storage.rows import INSERT_EVENT
from testbed.history_rows import Plan, synthetic_rows

HISTORY = next(m.version for m in load_migrations() if m.name == "history")
TABLES = {
    "streams": "SELECT * FROM streams ORDER BY id",
    "stream_kinds": "SELECT * FROM stream_kinds ORDER BY domain, app_name, stream_id, kind",
    "push_sessions": "SELECT * FROM push_sessions ORDER BY id",
}


def _rows() -> list[tuple[Any, ...]]:
    rows = synthetic_rows(
        Plan(events=3000, streams=30, live_share=0.3, reordered_share=0.3), seed=7
    )
    # Edge cases: no sequence, no domain, an end with a string errcode, a duplicate.
    base = rows[-1][9]
    extra: list[tuple[Any, ...]] = [
        ("x-1", 1, "stream_begin", "x:1", None, None, "bare", 100.0, None, base + 1, None, None,
         '{"event_type":1}', None),
        ("x-2", 0, "stream_end", "x:2", None, None, "bare", 200.0, None, base + 2, None, None,
         '{"event_type":0,"errcode":"3","push_duration":"100000"}', 100000),
        ("x-3", 0, "stream_end", "x:2", None, None, "bare", 200.0, None, base + 3, None, None,
         '{"event_type":0,"errcode":"3"}', None),  # same dedupe key: ignored
        ("x-4", 0, "stream_end", "x:4", None, None, "bare", 300.0, None, base + 4, None, None,
         '{"event_type":0,"push_duration":50000}', 50000),
    ]  # fmt: skip
    return [*rows, *extra]


async def _tables(conn: aiosqlite.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: [tuple(row) for row in await conn.execute_fetchall(sql)]
        for name, sql in TABLES.items()
    }


# The writer's statement before migration 0004 added `push_duration_ms` (the last column).
INSERT_BEFORE_0004 = (
    "INSERT OR IGNORE INTO events (id, event_type, kind, dedupe_key, domain, app_name, stream_id,"
    " event_time, sequence, received_at, path_kind, schema_error, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def _insert(conn: aiosqlite.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute("BEGIN")
    await conn.executemany(INSERT_EVENT, rows)
    await conn.execute("COMMIT")


async def _insert_before_0004(conn: aiosqlite.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute("BEGIN")
    await conn.executemany(INSERT_BEFORE_0004, [row[:-1] for row in rows])
    await conn.execute("COMMIT")


async def test_backfill_builds_what_the_triggers_build(tmp_path: Path) -> None:
    rows = _rows()
    live = await connect(tmp_path / "live.db")
    old = await connect(tmp_path / "old.db")
    try:
        await apply_migrations(live)
        for start in range(0, len(rows), 97):  # many small commits, like the writer's batches
            await _insert(live, rows[start : start + 97])

        # A database from before the history migration, with events already stored.
        await old.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at REAL NOT NULL)"
        )
        for migration in load_migrations():
            if migration.version >= HISTORY:
                break
            for statement in _statements(migration.sql):
                await old.execute(statement)
            await old.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
        await _insert_before_0004(old, rows)
        applied = await apply_migrations(old)
        built, backfilled = await _tables(live), await _tables(old)
        # The migration's SQL reading of push_duration agrees with the writer's.
        durations = "SELECT seq, push_duration_ms FROM events ORDER BY seq"
        assert list(map(tuple, await old.execute_fetchall(durations))) == list(
            map(tuple, await live.execute_fetchall(durations))
        )
    finally:
        await live.close()
        await old.close()
    assert HISTORY in [m.version for m in applied]
    assert built == backfilled
    assert len(built["streams"]) == 31
    assert any(row[4] == "live" for row in built["streams"])


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await connect(tmp_path / "r.db")
    try:
        await apply_migrations(conn)
        yield conn
    finally:
        await conn.close()


async def test_duplicates_and_edge_cases_are_counted_once(db: aiosqlite.Connection) -> None:
    await _insert(db, _rows()[-4:])
    (bare,) = await db.execute_fetchall("SELECT * FROM streams")
    assert (
        bare["domain"],
        bare["app_name"],
        bare["state"],
        bare["sessions"],
        bare["open_sessions"],
    ) == ("", "", "ended", 2, 0)
    kinds = await db.execute_fetchall("SELECT kind, events FROM stream_kinds ORDER BY kind")
    assert [tuple(k) for k in kinds] == [("stream_begin", 1), ("stream_end", 2)]
    sessions = await db.execute_fetchall(
        "SELECT session_key, begin_seq IS NULL, end_seq IS NULL, started_at"
        " FROM push_sessions ORDER BY id"
    )
    # Without a sequence, an end closes the stream's only open session without one; when there
    # is none, it is a session of its own, placed push_duration before its end.
    assert [tuple(s) for s in sessions] == [("#x-1", 0, 0, 100.0), ("#x-4", 1, 0, 250.0)]
    key = await history.find_stream(db, "bare", None, None)
    page = await history.list_sessions(db, key, SessionQuery())
    newest, oldest = page.items
    assert (oldest.state, oldest.end_code, oldest.duration_seconds) == ("ended", 3, 100.0)
    assert (newest.state, newest.end_code, newest.duration_seconds) == ("ended", None, 50.0)
    assert newest.start.timestamp() == 250.0


QUERIES = [
    EventQuery(stream_id="stream-00001"),
    EventQuery(stream_id="stream-00001", kind=["snapshot", "record"], since=1.0),
    EventQuery(kind=["record"]),
    EventQuery(kind=["record", "porn"], order="asc"),
    EventQuery(kind=["record"], since=1_700_000_000.0, until=1_700_086_400.0),
    EventQuery(event_type=0),
    EventQuery(since=1_700_000_000.0, until=1_700_086_400.0),
    EventQuery(received_since=1_700_000_000.0),
    EventQuery(published=False),
    EventQuery(published=False, domain="push.example.com"),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: str(q.model_dump(exclude_defaults=True)))
async def test_filtered_event_pages_search_an_index(tmp_path: Path, query: EventQuery) -> None:
    conn = await connect(tmp_path / "r.db")
    await apply_migrations(conn)
    for after in (None, 1000):
        sql = history.events_page_sql(query, after)
        plan = [
            row[3]
            for row in await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql.text}", sql.params)
        ]
        scans = [step for step in plan if step.startswith("SCAN events") and "INDEX" not in step]
        assert not scans, plan
        assert any("INDEX" in step for step in plan), plan
    await conn.close()


@pytest.mark.parametrize(
    "query", [StreamQuery(state="live"), StreamQuery(domain="d"), StreamQuery(stream_id="s")]
)
async def test_filtered_stream_pages_search_an_index(tmp_path: Path, query: StreamQuery) -> None:
    conn = await connect(tmp_path / "r.db")
    await apply_migrations(conn)
    sql = history.streams_page_sql(query, None)
    plan = [
        row[3] for row in await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql.text}", sql.params)
    ]
    assert plan[0].startswith("SEARCH s USING"), plan
    await conn.close()


def test_the_migration_leaves_no_objects_half_made(tmp_path: Path) -> None:
    """A failing statement rolls all of 0002 back, backfill included."""
    database = tmp_path / "r.db"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE streams (x)")  # collides with 0002
    conn.commit()
    conn.close()

    async def migrate() -> None:
        db = await connect(database)
        try:
            await apply_migrations(db)
        finally:
            await db.close()

    import asyncio

    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(migrate())
    conn = sqlite3.connect(database)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "events" in names  # 0001 committed on its own
    assert not names & {"push_sessions", "stream_kinds", "events_kind_seq", "push_feed"}


async def test_the_writers_insert_calls_no_sql_function(db: aiosqlite.Connection) -> None:
    """One scalar function call anywhere in a trigger on `events` (even one whose WHEN never
    holds) makes SQLite open a statement journal for every insert; EXPLAIN lists the opcodes of
    every trigger the insert can run."""
    program = await db.execute_fetchall(f"EXPLAIN {INSERT_EVENT}", (None,) * 14)
    opcodes = {row[1] for row in program}
    assert "Program" in opcodes  # the triggers are part of the listing
    assert not opcodes & {"Function", "PureFunc"}, sorted(opcodes)
