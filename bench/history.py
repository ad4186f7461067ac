"""History query benchmark: latency of representative queries as a ratio to a primary-key lookup.

    python -m bench.history                      # 1,000,000 events across 10,000 streams
    python -m bench.history --events 10000 --streams 100 --runs 5    # a quick smoke run

It builds a temporary database with the real migrations, bulk-loads synthetic CSS events (push
sessions with snapshots, recordings, moderation hits and push exceptions; some stream-ends
stored before their push-begins, as retries do) through the service's own INSERT statement, so
the history triggers run exactly as in production. It then times each query the API runs
(through `receiver.history.sql`, including building the response models) and a primary-key lookup
on the same connection, and prints EXPLAIN QUERY PLAN for each. It also loads a sample into a
database with only the core migration, to show what the history triggers and indexes cost
the write path. Timings are for comparison on one machine; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from receiver.history import sql as history
from receiver.history.params import EventQuery, SessionQuery, StreamQuery
from receiver.storage.connect import connect
from receiver.storage.migrations import _statements, apply_migrations, load_migrations
from receiver.storage.rows import INSERT_EVENT
from testbed.history_rows import BASE_TIME, SPAN_SECONDS, Plan, Row, synthetic_rows

# --- loading ----------------------------------------------------------------------------------


async def load(conn: aiosqlite.Connection, rows: Sequence[Row], batch: int = 50_000) -> float:
    """Insert `rows` in big transactions through the writer's statement; returns seconds."""
    started = time.perf_counter()
    for offset in range(0, len(rows), batch):
        await conn.execute("BEGIN IMMEDIATE")
        await conn.executemany(INSERT_EVENT, rows[offset : offset + batch])
        await conn.execute("COMMIT")
    return time.perf_counter() - started


# The migrations that build the history tables and triggers; every other one is core schema.
HISTORY_MIGRATIONS = frozenset({"history", "stream_state_by_open_sessions"})


async def core_only_database(path: Path) -> aiosqlite.Connection:
    """A database with every migration but the history ones: the write path without them.

    The writer's statement also fills `events.push_duration_ms`, a column the history migration
    adds (the triggers read it), so the core database gets that column, bare.
    """
    conn = await connect(path)
    for migration in load_migrations():
        if migration.name not in HISTORY_MIGRATIONS:
            for statement in _statements(migration.sql):
                await conn.execute(statement)
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


# --- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    name: str
    rows: int
    median_ms: float
    p95_ms: float
    sql_median_ms: float


async def measure(
    name: str,
    runs: int,
    make: Callable[[int], Awaitable[tuple[int, Callable[[], Awaitable[Any]]]]],
) -> Measured:
    """Time `runs` calls; `make(i)` prepares call i and returns (rows it returns, SQL-only call)."""
    full: list[float] = []
    sql: list[float] = []
    rows = 0
    for i in range(runs):
        started = time.perf_counter()
        rows, sql_only = await make(i)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        await sql_only()
        sql.append(time.perf_counter() - started)
    return Measured(
        name, rows, _ms(statistics.median(full)), _ms(_p95(full)), _ms(statistics.median(sql))
    )


def _ms(seconds: float) -> float:
    return seconds * 1000


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def plan_of(conn: aiosqlite.Connection, sql: history.Sql) -> list[str]:
    rows = await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql.text}", sql.params)
    return [row[3] for row in rows]


async def run(args: argparse.Namespace) -> int:
    plan = Plan(events=args.events, streams=args.streams)
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="receiver-bench-") as tmp:
        path = Path(args.database or Path(tmp) / "history.db")
        print(
            f"generating {plan.events:,} events across {plan.streams:,} streams ...",
            file=out,
            flush=True,
        )
        started = time.perf_counter()
        rows = synthetic_rows(plan, args.seed)
        print(f"  generated {len(rows):,} rows in {time.perf_counter() - started:.1f} s", file=out)

        sample = rows[: min(len(rows), args.compare)]
        core_seconds = await _timed_load(core_only_database(Path(tmp) / "core.db"), sample)
        sample_seconds = await _timed_load(_migrated(Path(tmp) / "sample.db"), sample)

        conn = await _migrated(path)
        try:
            seconds = await load(conn, rows)
            print(
                f"  loaded in {seconds:.1f} s "
                f"({len(rows) / seconds:,.0f} events/s, with history triggers)",
                file=out,
            )
            print(
                f"  write cost of history (first {len(sample):,} events): "
                f"{len(sample) / core_seconds:,.0f} events/s core schema only, "
                f"{len(sample) / sample_seconds:,.0f} events/s with history "
                f"({sample_seconds / core_seconds:.2f}x the time)",
                file=out,
            )
            await conn.execute("PRAGMA optimize")
            results, plans = await _queries(conn, args.runs, random.Random(args.seed + 1))
            counted = await conn.execute_fetchall(
                "SELECT count(*) FROM streams WHERE state = 'live'"
            )
            live = next(iter(counted))[0]
        finally:
            await conn.close()

    pk = results[0]
    print(
        f"\n{len(rows):,} events, {plan.streams:,} streams ({live} live), "
        f"{args.runs} runs per query",
        file=out,
    )
    header = ("query", "rows", "median ms", "p95 ms", "x PK", "SQL ms", "SQL x PK")
    print(f"{header[0]:<44} " + " ".join(f"{h:>9}" for h in header[1:]), file=out)
    for m in results:
        cells = (
            f"{m.rows}",
            f"{m.median_ms:.3f}",
            f"{m.p95_ms:.3f}",
            f"{m.median_ms / pk.median_ms:.1f}",
            f"{m.sql_median_ms:.3f}",
            f"{m.sql_median_ms / pk.sql_median_ms:.1f}",
        )
        print(f"{m.name:<44} " + " ".join(f"{c:>9}" for c in cells), file=out)
    print("\nEXPLAIN QUERY PLAN", file=out)
    for name, lines in plans.items():
        print(f"  {name}", file=out)
        for line in lines:
            print(f"      {line}", file=out)
    return 0


async def _queries(
    conn: aiosqlite.Connection, runs: int, rng: random.Random
) -> tuple[list[Measured], dict[str, list[str]]]:
    max_seq: int = next(iter(await conn.execute_fetchall("SELECT max(seq) FROM events")))[0]
    streams = [r[0] for r in await conn.execute_fetchall("SELECT stream_id FROM streams")]
    day = 86_400

    def stream() -> str:
        chosen: str = rng.choice(streams)
        return chosen

    def window() -> tuple[float, float]:
        since = BASE_TIME + rng.uniform(0, SPAN_SECONDS - day)
        return since, since + day

    pk_sql = f"SELECT {history.EVENT_COLUMNS} FROM events WHERE seq = ?"

    async def pk(_: int) -> tuple[int, Callable[[], Awaitable[Any]]]:
        seq = rng.randint(1, max_seq)
        found = await conn.execute_fetchall(pk_sql, (seq,))
        return len(list(found)), lambda: conn.execute_fetchall(pk_sql, (seq,))

    def events(
        make_query: Callable[[], EventQuery], after: Callable[[], int | None] = lambda: None
    ) -> Callable[[int], Awaitable[tuple[int, Callable[[], Awaitable[Any]]]]]:
        async def call(_: int) -> tuple[int, Callable[[], Awaitable[Any]]]:
            query, position = make_query(), after()
            page = await history.list_events(conn, query, position)
            sql = history.events_page_sql(query, position)
            return len(page.items), lambda: conn.execute_fetchall(sql.text, sql.params)

        return call

    async def live_streams(_: int) -> tuple[int, Callable[[], Awaitable[Any]]]:
        query = StreamQuery(state="live", limit=100)
        page = await history.list_streams(conn, query)
        sql = history.streams_page_sql(query, None)
        return len(page.items), lambda: conn.execute_fetchall(sql.text, sql.params)

    async def all_streams(_: int) -> tuple[int, Callable[[], Awaitable[Any]]]:
        query = StreamQuery(limit=100)
        page = await history.list_streams(conn, query)
        sql = history.streams_page_sql(query, None)
        return len(page.items), lambda: conn.execute_fetchall(sql.text, sql.params)

    async def sessions(_: int) -> tuple[int, Callable[[], Awaitable[Any]]]:
        query = SessionQuery()
        key = await history.find_stream(conn, stream(), None, None)
        page = await history.list_sessions(conn, key, query)
        sql = history.sessions_page_sql(key.id, True, query.limit, None)

        async def sql_only() -> None:
            found = list(await conn.execute_fetchall(sql.text, sql.params))
            windows = [(r["id"], r["started_at"], r["next_started_at"] or 1e300) for r in found]
            items = history.session_items_sql(key, windows, query.items)
            await conn.execute_fetchall(items.text, items.params)

        return len(page.items), sql_only

    cases: list[
        tuple[str, Callable[[int], Awaitable[tuple[int, Callable[[], Awaitable[Any]]]]]]
    ] = [
        ("primary-key lookup (baseline)", pk),
        ("events: first page by stream", events(lambda: EventQuery(stream_id=stream()))),
        (
            "events: by kind + 1-day window",
            events(lambda: EventQuery(kind=["record"], since=(w := window())[0], until=w[1])),
        ),
        ("streams: live", live_streams),
        ("sessions of one stream (+ their events)", sessions),
        ("events: newest page, no filter", events(lambda: EventQuery())),
        ("events: one kind", events(lambda: EventQuery(kind=["porn"]))),
        ("events: two kinds", events(lambda: EventQuery(kind=["record", "push_exception"]))),
        ("events: 1-day window", events(lambda: EventQuery(since=(w := window())[0], until=w[1]))),
        (
            "events: by stream + kind",
            events(lambda: EventQuery(stream_id=stream(), kind=["snapshot"])),
        ),
        ("events: unpublished (outbox backlog)", events(lambda: EventQuery(published=False))),
        (
            "events: deep page (cursor mid-table)",
            events(lambda: EventQuery(), lambda: rng.randint(1, max_seq)),
        ),
        ("streams: first page, no filter", all_streams),
    ]
    results = [await measure(name, runs, call) for name, call in cases]

    plans: dict[str, list[str]] = {
        "primary-key lookup (baseline)": await plan_of(conn, history.Sql(pk_sql, (1,)))
    }
    since = BASE_TIME + SPAN_SECONDS / 2
    samples: dict[str, history.Sql] = {
        "events: first page by stream": history.events_page_sql(
            EventQuery(stream_id=streams[0]), None
        ),
        "events: by kind + 1-day window": history.events_page_sql(
            EventQuery(kind=["record"], since=since, until=since + day), None
        ),
        "events: two kinds": history.events_page_sql(
            EventQuery(kind=["record", "push_exception"]), None
        ),
        "events: 1-day window": history.events_page_sql(
            EventQuery(since=since, until=since + day), None
        ),
        "events: unpublished": history.events_page_sql(EventQuery(published=False), None),
        "streams: live": history.streams_page_sql(StreamQuery(state="live"), None),
    }
    key = await history.find_stream(conn, streams[0], None, None)
    samples["sessions of one stream"] = history.sessions_page_sql(key.id, True, 20, None)
    samples["events of those sessions"] = history.session_items_sql(
        key, [(1, BASE_TIME, 1e300)], 20
    )
    for name, sql in samples.items():
        plans[name] = await plan_of(conn, sql)
    return results, plans


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per query")
    parser.add_argument(
        "--compare", type=int, default=100_000, help="events in the write-cost sample"
    )
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--database", type=Path, help="keep the loaded database here")
    args = parser.parse_args(argv)
    if args.events < args.streams or args.streams < 1:
        parser.error("--events must be at least --streams, and --streams at least 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
