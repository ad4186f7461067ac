"""Several `receiver serve` processes on one PostgreSQL database, as behind a load balancer.

Real processes, real HTTP, the suite's own PostgreSQL server, which one test crashes mid-load:
retries of one event spread over the replicas store one row and are all answered 200; while the
server is down callbacks are answered 503 (never 200 for an event not committed), and once it is
back the replicas recover on their own; every event answered 200 is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from testbed.postgres import PostgresCluster
from testbed.service import ServiceProcess
from tests.support.helpers import API_TOKEN, KEY, payload, signed, snapshot
from tests.support.postgres import fetch

REPLICAS = 3


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_DATABASE": pg_url,
    }
    with contextlib.ExitStack() as stack:
        services = [
            stack.enter_context(ServiceProcess(tmp_path / f"unused-{n}.db", env))
            for n in range(REPLICAS)
        ]
        yield services


async def test_concurrent_retries_over_three_replicas_store_one_row(
    replicas: list[ServiceProcess], pg_url: str
) -> None:
    body = payload("stream_end_0.json")
    retries = [signed(dict(reversed(body.items())) if n % 2 else body) for n in range(50)]
    urls = itertools.cycle(service.url for service in replicas)
    async with aiohttp.ClientSession() as session:

        async def post(url: str, callback: dict[str, object]) -> tuple[int, str | None]:
            async with session.post(f"{url}/callbacks", json=callback) as answer:
                return answer.status, answer.headers.get("X-Event-Id")

        answers = await asyncio.gather(*(post(next(urls), r) for r in retries))
    assert [status for status, _ in answers] == [200] * len(retries)
    stored = await fetch(pg_url, "SELECT id FROM events")
    assert len(stored) == 1
    assert {event_id for _, event_id in answers} == {stored[0]["id"]}


async def _ready(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/readyz") as answer:
        return answer.status


async def test_a_database_crash_mid_load_is_503_then_recovers_without_a_restart(
    replicas: list[ServiceProcess], pg_url: str, postgres: PostgresCluster
) -> None:
    acknowledged: set[str] = set()
    statuses: dict[int, int] = {}
    phase = {"name": "before"}
    by_phase: dict[str, dict[int, int]] = {"before": {}, "down": {}, "after": {}}
    stop = asyncio.Event()
    numbers = itertools.count()

    async def client(session: aiohttp.ClientSession, url: str) -> None:
        while not stop.is_set():
            callback = snapshot("cam-load", next(numbers))
            try:
                async with session.post(f"{url}/callbacks", json=callback) as answer:
                    status = answer.status
                    if status == 200:
                        acknowledged.add(answer.headers["X-Event-Id"])
            except aiohttp.ClientError:
                status = 0  # never expected: the receivers stay up
            statuses[status] = statuses.get(status, 0) + 1
            counts = by_phase[phase["name"]]
            counts[status] = counts.get(status, 0) + 1
            await asyncio.sleep(0.01)  # a steady rate, not a flood: 2 cores are shared

    async def until(predicate_phase: str, status: int, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while by_phase[predicate_phase].get(status, 0) < count:
            assert time.monotonic() < deadline, (
                f"no {count} x {status} {predicate_phase}: {by_phase}"
            )
            await asyncio.sleep(0.05)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        load = [
            asyncio.create_task(client(session, service.url))
            for service in replicas
            for _ in range(2)
        ]
        try:
            await until("before", 200, 60, within=30)
            phase["name"] = "down"
            await asyncio.to_thread(postgres.kill)  # SIGKILL: a crash, not a clean stop
            await until("down", 503, 30, within=30)
            assert {await _ready(session, s.url) for s in replicas} == {503}
            await asyncio.to_thread(postgres.start)
            phase["name"] = "after"
            await until("after", 200, 60, within=60)
            for service in replicas:  # each replica recovered on its own
                deadline = time.monotonic() + 30
                while await _ready(session, service.url) != 200:
                    assert time.monotonic() < deadline, f"{service.url} not ready again"
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*load)

    assert set(statuses) <= {200, 503}, statuses
    stored = {row["id"] for row in await fetch(pg_url, "SELECT id FROM events")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged events lost"
    # The stream's events, in any replica's order, are one row each.
    payloads = await fetch(
        pg_url, "SELECT count(DISTINCT payload) AS n, count(*) AS rows FROM events"
    )
    assert payloads[0]["n"] == payloads[0]["rows"]
