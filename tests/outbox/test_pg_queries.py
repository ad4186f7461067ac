"""The PostgreSQL outbox reads each owned partition in storage order, and a seq that commits
late in one partition is never passed over because another partition was read further."""

from __future__ import annotations

import asyncpg

from receiver.outbox.pg_queries import mark, start_cursors, unpublished
from receiver.storage.engine import PostgresUrl
from receiver.storage.postgres.context import prepare_postgres

_INSERT = (
    "INSERT INTO events (partition, id, event_type, kind, dedupe_key, stream_id, received_at,"
    " payload) VALUES ($1, $2, 200, 'snapshot', $2, $3, 1, '{}') RETURNING seq"
)


async def test_a_late_commit_in_one_partition_is_read_in_its_order(pg_url: str) -> None:
    pool, _ = await prepare_postgres(PostgresUrl(pg_url))
    late = await asyncpg.connect(pg_url)
    try:
        async with pool.acquire() as conn:
            a1 = await conn.fetchval(_INSERT, 1, "a1", "a")
            # Partition 1's next event is given its seq, and is still committing...
            transaction = late.transaction()
            await transaction.start()
            a2 = await late.fetchval(_INSERT, 1, "a2", "a")
            # ... while partition 2 stores a later one.
            b1 = await conn.fetchval(_INSERT, 2, "b1", "b")
            cursors = start_cursors(frozenset({1, 2, 3}))
            first = await unpublished(conn, cursors, 10)
            assert [row[1] for row in first] == ["a1", "b1"]
            await transaction.commit()
            a3 = await conn.fetchval(_INSERT, 1, "a3", "a")
            second = await unpublished(conn, cursors, 10)
            assert [row[1] for row in second] == ["a2", "a3"]  # a2 was not passed over
            assert a1 < a2 < b1 < a3
            assert cursors == {1: a3, 2: b1, 3: 0}

            await mark(conn, [(5.0, None, a1), (5.0, None, b1)], [("nack", a2)])
            again = await unpublished(conn, start_cursors(frozenset({1, 2})), 10)
            assert [row[1] for row in again] == ["a2", "a3"]
            attempts = await conn.fetch("SELECT id, publish_attempts, last_error FROM events")
            assert {r["id"]: (r["publish_attempts"], r["last_error"]) for r in attempts} == {
                "a1": (1, None), "a2": (1, "nack"), "b1": (1, None), "a3": (0, None),
            }  # fmt: skip
    finally:
        await late.close()
        await pool.close()
