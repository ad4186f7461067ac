"""Three `receiver serve` replicas on one PostgreSQL database and one broker; a client posts
round-robin at a steady rate; one replica is killed (`kill -9`) mid-load and started again.
Every acknowledged event is stored once and published, and each stream's messages reach the
queue in storage order (a consumer skipping repeated message_ids sees storage order)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from testbed.service import ServiceProcess
from tests.support.amqp import Tap
from tests.support.helpers import API_TOKEN, KEY, eventually_async, snapshot
from tests.support.postgres import fetch
from tests.support.publishing import first_occurrences, per_stream

REPLICAS = 3
STREAMS = 6


@pytest.fixture
def replicas(
    pg_url: str, amqp_url: str, exchange_name: str, tmp_path: Path
) -> Iterator[list[ServiceProcess]]:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_DATABASE": pg_url,
        "RECEIVER_AMQP_URL": amqp_url,
        "RECEIVER_AMQP_EXCHANGE": exchange_name,
        "RECEIVER_PUBLISH_RETRY_MAX_SECONDS": "0.5",
    }
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(ServiceProcess(tmp_path / f"unused-{n}.db", env))
            for n in range(REPLICAS)
        ]


async def test_a_replica_killed_mid_load_loses_nothing_and_keeps_stream_order(
    replicas: list[ServiceProcess], pg_url: str, amqp_url: str, exchange_name: str
) -> None:
    tap = await Tap(amqp_url, exchange_name).open()
    sent = acknowledged = 0
    acknowledged_ids: set[str] = set()
    numbers = itertools.count()
    stop = asyncio.Event()
    down: set[int] = set()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent, acknowledged
        for index in itertools.cycle(range(REPLICAS)):
            if stop.is_set():
                return
            if index in down:
                continue
            n = next(numbers)
            sent += 1
            try:
                async with session.post(
                    f"{replicas[index].url}/callbacks", json=snapshot(f"s{n % STREAMS}", n)
                ) as answer:
                    if answer.status == 200:
                        acknowledged += 1
                        acknowledged_ids.add(answer.headers["X-Event-Id"])
            except aiohttp.ClientError:
                pass  # the killed replica: CSS would retry elsewhere
            await asyncio.sleep(0.005)

    async def until(count: int) -> None:
        async def reached() -> bool:
            return acknowledged >= count

        await eventually_async(reached, within=60, what=f"{count} acknowledged")

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            load = [asyncio.create_task(client(session)) for _ in range(3)]
            try:
                await until(200)
                replicas[1].kill()  # whatever it had in flight: no answer, or publishing
                down.add(1)
                await until(acknowledged + 200)
                await asyncio.to_thread(replicas[1].start)
                down.discard(1)
                await until(acknowledged + 200)
            finally:
                stop.set()
                await asyncio.gather(*load)

        rows = await fetch(pg_url, "SELECT id, payload FROM events ORDER BY seq")
        stored = {row["id"] for row in rows}
        assert acknowledged_ids <= stored
        assert len({row["payload"] for row in rows}) == len(rows)  # each callback stored once
        received = await tap.wait_for_ids(stored, within=60)
        in_storage_order: dict[str, list[int]] = {}
        for row in rows:
            body = json.loads(row["payload"])
            in_storage_order.setdefault(body["stream_id"], []).append(body["test_no"])
        assert per_stream(first_occurrences(received)) == in_storage_order
        duplicates = len(received) - len(set(tap.ids()))
        print(
            f"\nreplica kill: sent {sent}, acknowledged {acknowledged}, stored {len(rows)}, "
            f"published {len(set(tap.ids()))}, duplicates in the queue {duplicates}, "
            "order violations 0"
        )
    finally:
        await tap.close()
        await tap.delete()
