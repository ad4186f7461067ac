"""Replay behind a load balancer: PostgreSQL replicas share replay jobs through the database.

A job started through one replica is polled through another; one replay runs at a time across
replicas; a job whose replica died (no heartbeat) is reported failed and frees the slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from receiver.outbox.envelope import REPLAY_HEADER
from receiver.settings import Settings
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
