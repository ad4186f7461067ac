"""The action book inside PostgreSQL's intake: a batch with a trigger records its action in the
transaction that stores it, with the push session current at that event; a batch without one
keeps the single `store_events` call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from receiver.metrics import Metrics
from receiver.moderation.pg_book import PgActionBook
from receiver.moderation.policy import ModerationPolicy
from receiver.storage.engine import PostgresUrl
from receiver.storage.postgres.context import prepare_postgres
from receiver.storage.postgres.intake import PostgresIntake
from tests.moderation.support import stored_actions
from tests.support.css import porn, push_begin, snapshot
from tests.support.postgres import stored_events

T0 = int(time.time()) - 600
PORN, BEGIN, SNAPSHOT = 317, 1, 200


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool, _ = await prepare_postgres(PostgresUrl(pg_url))
    yield pool
    await pool.close()


async def store_one_batch(
    intake: PostgresIntake, bodies: list[tuple[int, dict[str, Any]]]
) -> list[str]:
    """Submit every body before the intake's task first runs: they are stored as one batch."""
    intake.start()
    futures = [
        intake.submit(event_type, orjson.dumps(body), time.time(), None)
        for event_type, body in bodies
    ]
    try:
        return [await future for future in futures]
    finally:
        await intake.close()


async def test_a_batch_records_each_hit_with_the_session_current_at_it(
    pool: asyncpg.Pool[Any], pg_url: str
) -> None:
    intake = PostgresIntake(pool, Metrics.create())
    book = intake.moderation = PgActionBook(ModerationPolicy(action="forbid", dry_run=True))
    woken: list[bool] = []
    book.listeners.append(lambda: woken.append(True))
    ids = await store_one_batch(
        intake,
        [
            (BEGIN, push_begin("b1", "seq-1", T0)),
            (PORN, porn("b1", T0 + 1)),
            (SNAPSHOT, snapshot("other", T0 + 1)),
            (BEGIN, push_begin("b1", "seq-2", T0 + 5)),  # a new push of the same stream
            (PORN, porn("b1", T0 + 6)),
            (PORN, porn("b1", T0 + 7)),  # the same session again: nothing more
        ],
    )
    assert intake.stats.transactions == 1 and intake.stats.largest_batch == 6
    database = PostgresUrl(pg_url)
    found = await stored_actions(database)
    # Both hits of one transaction, each with its own session: the rows before a hit are
    # stored before its action is recorded.
    assert [(a["session_key"], a["trigger_event_id"]) for a in found] == [
        ("seq-1", ids[1]),
        ("seq-2", ids[4]),
    ]
    assert all(a["state"] == "dry_run" for a in found)
    published = await stored_events(database, "kind = 'moderation_action'")
    assert len(published) == 2  # final at once: published with the batch
    assert woken == []  # nothing pending for an executor (a dry run)


async def test_a_retry_in_a_later_batch_records_nothing(
    pool: asyncpg.Pool[Any], pg_url: str
) -> None:
    policy = ModerationPolicy(action="forbid")
    hit = porn("b2", T0 + 1)
    first = PostgresIntake(pool, Metrics.create())
    first.moderation = PgActionBook(policy)
    await store_one_batch(first, [(BEGIN, push_begin("b2", "seq-1", T0))])
    first = PostgresIntake(pool, Metrics.create())
    first.moderation = PgActionBook(policy)
    (trigger,) = await store_one_batch(first, [(PORN, hit)])
    # Another replica's intake receives CSS's retry of the same hit.
    other = PostgresIntake(pool, Metrics.create())
    other.moderation = PgActionBook(policy)
    (again,) = await store_one_batch(other, [(PORN, hit)])
    assert again == trigger  # the stored event's id: a duplicate
    (action,) = await stored_actions(PostgresUrl(pg_url))
    assert action["state"] == "pending" and action["trigger_event_id"] == trigger


def test_batches_without_a_trigger_keep_the_single_store_call() -> None:
    book = PgActionBook(ModerationPolicy(action="forbid"))
    snapshot_columns: list[list[Any]] = [[0], ["id"], [SNAPSHOT], ["snapshot"], ["k"]]
    snapshot_columns += [[None] for _ in range(10)]
    snapshot_columns[13] = [orjson.dumps(snapshot("s", T0)).decode()]
    assert book.triggers(snapshot_columns) == {}
    review = {**porn("s", T0), "suggestion": "Review"}  # a hit the policy does not select
    porn_columns = [list(column) for column in snapshot_columns]
    porn_columns[2], porn_columns[7], porn_columns[13] = (
        [PORN],
        ["s"],
        [orjson.dumps(review).decode()],
    )
    assert book.triggers(porn_columns) == {}
    porn_columns[13] = [orjson.dumps(porn("s", T0)).decode()]
    assert list(book.triggers(porn_columns)) == [0]
    assert PgActionBook(ModerationPolicy()).triggers(porn_columns) == {}  # no policy
