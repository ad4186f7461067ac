"""PostgreSQL's history trigger keeps the same streams and sessions as SQLite's triggers.

The same events, in the same order, go into a SQLite database and a PostgreSQL one through each
engine's own INSERT; every derived row (streams, their counts per kind, push sessions) must come
out the same. The events: the history benchmark's realistic mix (overlapping sessions, stream
ends stored before their begins) plus the identity and session rules' edge cases. They go in
both one row per statement and as the intake stores them, many rows per `store_events` call: a
history kept per statement rather than per row (measured, docs/scaling.md) must still resolve a
row against exactly the streams the rows before it created.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receiver.storage.connect import connect
from receiver.storage.engine import PostgresUrl
from receiver.storage.migrations import apply_migrations
from receiver.storage.partitions import partition_of
from receiver.storage.postgres.context import prepare_postgres
from receiver.storage.rows import INSERT_EVENT
from testbed.history_rows import APP, DOMAIN, Plan, synthetic_rows

if TYPE_CHECKING:
    from receiver.storage.postgres.pool import Connection

_PG_INSERT = (
    "INSERT INTO events (partition, id, event_type, kind, dedupe_key, domain, app_name,"
    " stream_id, event_time, sequence, received_at, path_kind, schema_error, payload,"
    " push_duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
_STORE = (
    "SELECT * FROM store_events($1::smallint[], $2::text[], $3::integer[], $4::text[],"
    " $5::text[], $6::text[], $7::text[], $8::text[], $9::float8[], $10::text[], $11::float8[],"
    " $12::text[], $13::text[], $14::text[], $15::bigint[], $16)"
)
_STREAMS = (
    "SELECT s.domain, s.app_name, s.stream_id, s.state, s.sessions, s.open_sessions,"
    " s.last_begin, s.last_end, s.last_end_seq, p.session_key AS current"
    " FROM streams AS s LEFT JOIN push_sessions AS p ON p.id = s.current_session"
    " ORDER BY s.id"
)
_KINDS = (
    "SELECT domain, app_name, stream_id, kind, events, last_received_at FROM stream_kinds"
    " ORDER BY domain, app_name, stream_id, kind"
)
_SESSIONS = (
    "SELECT s.domain, s.app_name, s.stream_id, p.session_key, p.sequence, p.begin_seq,"
    " p.begin_time, p.end_seq, p.end_time, p.push_duration_ms, p.started_at"
    " FROM push_sessions AS p JOIN streams AS s ON s.id = p.stream ORDER BY p.id"
)


def _edge_rows() -> list[tuple[Any, ...]]:
    """Events missing part of their identity or their session, after the mix."""

    def row(n: int, event_type: int, kind: str, domain: str | None, app: str | None,
            stream: str, at: float, sequence: str | None,
            duration: int | None = None) -> tuple[Any, ...]:  # fmt: skip
        return (f"edge-{n}", event_type, kind, f"edge:{n}", domain, app, stream, at, sequence,
                at + 1, None, None, "{}", duration)  # fmt: skip

    t = 1_800_000_000.0
    return [
        row(1, 1, "stream_begin", DOMAIN, APP, "edge-a", t, "s1"),
        row(2, 0, "stream_end", None, None, "edge-a", t + 60, "s1", 60_000),  # joins edge-a
        row(3, 1, "stream_begin", DOMAIN, APP, "edge-b", t, None),  # no sequence
        row(4, 0, "stream_end", DOMAIN, APP, "edge-b", t + 30, None, 30_000),  # closes it
        row(5, 0, "stream_end", DOMAIN, APP, "edge-c", t + 90, "late", 90_000),  # end only
        row(6, 1, "stream_begin", DOMAIN, APP, "edge-c", t, "late"),  # its begin, later
        row(7, 200, "snapshot", None, APP, "edge-a", t + 5, None),  # domain resolved
        row(8, 1, "stream_begin", "other.example.com", APP, "edge-d", t, "d1"),
        row(9, 1, "stream_begin", DOMAIN, APP, "edge-d", t, "d2"),
        row(10, 0, "stream_end", None, None, "edge-d", t + 9, "d1", 10**18),  # two candidates
        row(11, 0, "stream_end", DOMAIN, APP, "edge-e", t, None, None),  # no duration, no seq
        row(12, 0, "stream_end", DOMAIN, APP, "edge-f", t + 100, "f1", 40_000),  # placed by it
    ]


def _batch_rows() -> list[tuple[Any, ...]]:
    """Rows of one statement whose history depends on the rows before them in it."""

    def row(n: int, event_type: int, kind: str, domain: str | None, app: str | None,
            stream: str, sequence: str | None = None,
            duration: int | None = None) -> tuple[Any, ...]:  # fmt: skip
        at = 1_800_000_000.0 + n
        return (f"batch-{n}", event_type, kind, f"batch:{n}", domain, app, stream, at, sequence,
                at + 1, None, None, "{}", duration)  # fmt: skip

    return [
        row(1, 200, "snapshot", DOMAIN, APP, "batch-g"),  # a new stream, by a snapshot
        row(2, 200, "snapshot", None, APP, "batch-g"),  # resolved: row 1 created it
        row(3, 1, "stream_begin", "other.example.com", APP, "batch-g", "g1"),
        row(4, 100, "recording", "other.example.com", APP, "batch-g"),
        row(5, 200, "snapshot", None, APP, "batch-g"),  # two candidates now: ''
        row(6, 100, "recording", DOMAIN, APP, "batch-h"),  # a new stream, by a recording
        row(7, 0, "stream_end", None, None, "batch-h", "h1", 1_000),  # resolved by row 6
        row(8, 200, "snapshot", DOMAIN, APP, "batch-i"),  # new streams after the last row
        row(9, 200, "snapshot", DOMAIN, APP, "batch-g"),  # counted with row 1
    ]


async def test_history_on_postgresql_matches_sqlite(tmp_path: Path, pg_url: str) -> None:
    events = [*synthetic_rows(Plan(events=3000, streams=40, live_share=0.2), seed=14),
              *_edge_rows(), *_batch_rows()]  # fmt: skip

    async def one_row_per_statement(pg: Connection) -> None:
        await pg.executemany(_PG_INSERT, [(partition_of(e[6]), *e) for e in events])

    await _compare(tmp_path, pg_url, events, one_row_per_statement)


async def test_history_of_batches_matches_sqlite(tmp_path: Path, pg_url: str) -> None:
    mix = synthetic_rows(Plan(events=3000, streams=40, live_share=0.2), seed=15)
    batches = [mix[i : i + 50] for i in range(0, len(mix), 50)]
    batches += [_edge_rows(), _batch_rows()]

    async def batched(pg: Connection) -> None:
        for batch in batches:
            columns = list(zip(*[(partition_of(e[6]), *e) for e in batch], strict=True))
            await pg.fetch(_STORE, *columns, 0.0)

    await _compare(tmp_path, pg_url, [e for b in batches for e in b], batched)


async def _compare(tmp_path: Path, pg_url: str, events: list[tuple[Any, ...]],
                   store: Callable[[Connection], Awaitable[None]]) -> None:  # fmt: skip
    database = tmp_path / "history.db"
    conn = await connect(database)
    await apply_migrations(conn)
    await conn.close()
    lite = sqlite3.connect(database)
    with lite:
        lite.executemany(INSERT_EVENT, events)

    pool, _ = await prepare_postgres(PostgresUrl(pg_url))
    try:
        async with pool.acquire() as pg, pg.transaction():
            await store(pg)
        async with pool.acquire() as pg:
            for query in (_STREAMS, _KINDS, _SESSIONS):
                expected = [tuple(r) for r in lite.execute(query)]
                got = [tuple(r) for r in await pg.fetch(query)]
                assert len(got) == len(expected), query
                mismatched = [(e, g) for e, g in zip(expected, got, strict=True) if e != g]
                assert mismatched == [], f"{len(mismatched)} rows differ: {mismatched[:3]}"
            assert await pg.fetchval("SELECT count(*) FROM streams WHERE state = 'live'") > 0
    finally:
        await pool.close()
        lite.close()
