"""Replay behind a load balancer: PostgreSQL replicas share replay jobs through the database.

A job started through one replica is polled through another; one replay runs at a time across
replicas; a job whose replica died (no heartbeat) is reported failed and frees the slot; a job
cut short by a shutdown is recorded as cancelled; only the newest finished jobs are kept; a
database that is down is a 503 naming it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.outbox.broker import make_publisher
from receiver.outbox.envelope import REPLAY_HEADER, Outgoing
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.pg_replay import PostgresBook
from receiver.outbox.replay import ReplayFilter
from receiver.outbox.replay_jobs import KEEP_FINISHED, ReplayJobs
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl
from receiver.storage.postgres.context import prepare_postgres
from testbed.postgres import PostgresCluster
from tests.conftest import ClientFactory
from tests.support.amqp import Tap
from tests.support.helpers import AUTH, eventually_async, snapshot
from tests.support.postgres import fetch
from tests.support.publishing import post_all

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def replicas(
    pg_url: str,  # first: dropped after the replicas stopped
    aiohttp_client: ClientFactory,
    broker_settings: Callable[..., Settings],
    amqp_url: str,
    exchange_name: str,
) -> Any:
    """Two replicas on one database and one broker, 6 events stored and published."""
    tap = await Tap(amqp_url, exchange_name).open()
    first = await aiohttp_client(create_app(broker_settings(database=pg_url)))
    second = await aiohttp_client(create_app(broker_settings(database=pg_url)))
    await post_all(first, [snapshot("a" if n % 2 else "b", n) for n in range(6)])

    async def published() -> bool:
        rows = await fetch(pg_url, "SELECT count(*) FROM events WHERE published_at IS NULL")
        return bool(rows[0][0] == 0)

    await eventually_async(published, what="all published")
    tap.received.clear()
    try:
        yield first, second, tap
    finally:
        await tap.close()
        await tap.delete()


async def _job(client: Client, job_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/events/replay/{job_id}", headers=AUTH)
    assert answer.status == 200, await answer.text()
    job: dict[str, Any] = (await answer.json())["replay"]
    return job


async def test_a_job_started_on_one_replica_is_polled_on_another(replicas: Any) -> None:
    first, second, tap = replicas
    response = await first.post("/api/events/replay", json={"stream_id": "a"}, headers=AUTH)
    assert response.status == 202, await response.text()
    started = (await response.json())["replay"]
    assert started["matched"] == 3

    async def finished() -> bool:
        return bool((await _job(second, started["id"]))["state"] != "running")

    await eventually_async(finished, what="the other replica sees the replay finish")
    on_second = await _job(second, started["id"])
    assert on_second == await _job(first, started["id"])  # one answer, whichever replica
    assert on_second["state"] == "done", on_second
    assert (on_second["published"], on_second["unroutable"], on_second["failed"]) == (3, 0, 0)
    assert on_second["filter"] == {"stream_id": "a"}
    assert on_second["started_at"] == started["started_at"]
    assert on_second["finished_at"] is not None
    replayed = await tap.wait_for(3)
    assert all(m.headers[REPLAY_HEADER] is True for m in replayed)
    assert {m.body["stream_id"] for m in replayed} == {"a"}


async def test_one_replay_at_a_time_across_replicas_and_a_dead_replicas_job_expires(
    replicas: Any, pg_url: str
) -> None:
    first, second, _ = replicas
    # A replay running on a third replica, which records its heartbeat.
    other = str(uuid.uuid4())
    await fetch(
        pg_url,
        "INSERT INTO replay_jobs (id, state, filter, matched, started_at, heartbeat_at)"
        " VALUES ($1, 'running', '{\"all\": true}', 6, 1.0,"
        " extract(epoch FROM clock_timestamp()))",
        other,
    )
    for replica in (first, second):
        busy = await replica.post("/api/events/replay", json={"all": True}, headers=AUTH)
        assert busy.status == 409
        answer = await busy.json()
        assert answer["error"] == "replay_running"
        assert other in answer["message"]
    assert (await _job(second, other))["state"] == "running"

    # That replica dies: its heartbeat stops. Any replica then reports the job failed, and a
    # new replay may start.
    await fetch(pg_url, "UPDATE replay_jobs SET heartbeat_at = heartbeat_at - 3600")
    dead = await _job(first, other)
    assert dead["state"] == "failed"
    assert "the replica running it stopped" in dead["error"]
    assert dead["finished_at"] is not None
    response = await second.post("/api/events/replay", json={"all": True}, headers=AUTH)
    assert response.status == 202, await response.text()
    job = (await response.json())["replay"]

    async def finished() -> bool:
        return bool((await _job(first, job["id"]))["state"] == "done")

    await eventually_async(finished, what="the new replay finishes")


class _Stuck:
    """A source whose events never come (a replay still reading when the service stops)."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()

    async def count(self, selection: ReplayFilter) -> int:
        return 5

    async def batches(
        self, selection: ReplayFilter, batch_size: int
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        self.reading.set()
        await asyncio.Event().wait()
        yield []


async def test_a_shutdown_records_the_job_cancelled_and_old_jobs_expire(
    pg_url: str, broker_settings: Callable[..., Settings]
) -> None:
    settings = broker_settings(database=pg_url)
    pool, _ = await prepare_postgres(PostgresUrl(pg_url))
    try:
        book = PostgresBook(pool)
        for n in range(KEEP_FINISHED + 5):  # finished long ago
            await pool.execute(
                "INSERT INTO replay_jobs (id, state, filter, matched, started_at, heartbeat_at)"
                " VALUES ($1, 'done', '{}', 0, $2, $2)",
                f"old-{n}",
                float(n),
            )
        source = _Stuck()
        metrics = PublishMetrics.create(CollectorRegistry())
        jobs = ReplayJobs(
            source, book, lambda: make_publisher(settings, None, name="test"), metrics, time.time
        )
        job = await jobs.start(ReplayFilter.model_validate({"all": True}))
        await source.reading.wait()
        running = await book.find(job.id)
        assert running is not None and running["state"] == "running"
        kept = await pool.fetch("SELECT id FROM replay_jobs WHERE state = 'done'")
        assert len(kept) == KEEP_FINISHED
        assert await book.find("old-0") is None  # the oldest went first
        assert await book.find(f"old-{KEEP_FINISHED + 4}") is not None

        await jobs.close()  # what the broker context does at shutdown
        cancelled = await book.find(job.id)
        assert cancelled is not None
        assert cancelled["state"] == "cancelled"
        assert cancelled["error"] == "the service is shutting down"
        assert cancelled["finished_at"] is not None
        assert await book.running() is None  # the next replay may start
    finally:
        await pool.close()


async def test_replay_requests_are_503_naming_the_database_while_it_is_down(
    pg_url: str,
    aiohttp_client: ClientFactory,
    broker_settings: Callable[..., Settings],
    postgres: PostgresCluster,
) -> None:
    client = await aiohttp_client(create_app(broker_settings(database=pg_url)))
    postgres.stop()
    try:
        for answer in (
            await client.get("/api/events/replay/some-id", headers=AUTH),
            await client.post("/api/events/replay", json={"all": True}, headers=AUTH),
        ):
            assert answer.status == 503
            body = await answer.json()
            assert body["error"] == "database_unavailable"
            assert "PostgreSQL cannot be reached" in body["message"]
    finally:
        postgres.start()
    answer = await client.get("/api/events/replay/some-id", headers=AUTH)
    assert answer.status == 404  # back by itself
