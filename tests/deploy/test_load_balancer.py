"""The `ha` Compose profile's load balancer, run for real: Debian's HAProxy with
deploy/haproxy.cfg in front of two `receiver serve` replicas on the suite's PostgreSQL.

No Docker engine here, so Compose itself cannot run; what it would run can: the same HAProxy
configuration, the same replica settings (one database, one callback key), real HTTP on
loopback. A replica killed mid-load costs no callback (HAProxy sends a callback that found no
replica to the other one), the dead replica is taken out by the health check, and once it is
back it takes callbacks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from testbed.service import ServiceProcess
from tests.support.haproxy import LoadBalancer
from tests.support.helpers import API_TOKEN, KEY, eventually, eventually_async, snapshot
from tests.support.postgres import fetch

_CALLBACKS = re.compile(r"^receiver_callbacks_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_DATABASE": pg_url,
    }
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(ServiceProcess(tmp_path / f"unused-{n}.db", env)) for n in (1, 2)
        ]


@pytest.fixture
def balancer(replicas: list[ServiceProcess], tmp_path: Path) -> Iterator[LoadBalancer]:
    with LoadBalancer(tmp_path, *(f"127.0.0.1:{r.port}" for r in replicas)) as lb:
        yield lb


async def _callbacks_served(session: aiohttp.ClientSession, replica: ServiceProcess) -> float:
    async with session.get(f"{replica.url}/metrics") as answer:
        return sum(float(v) for v in _CALLBACKS.findall(await answer.text()))


async def _post(session: aiohttp.ClientSession, url: str, n: int) -> tuple[int, str | None]:
    """(status, event id); status 0 when the load balancer dropped the connection."""
    try:
        async with session.post(f"{url}/callbacks", json=snapshot(f"cam-{n % 7}", n)) as a:
            return a.status, a.headers.get("X-Event-Id")
    except aiohttp.ClientConnectionError:
        return 0, None


def test_haproxy_accepts_the_profile_configuration(tmp_path: Path) -> None:
    lb = LoadBalancer(tmp_path, "127.0.0.1:1", "127.0.0.1:2")
    checked = lb.check()
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_callbacks_reach_both_replicas_and_survive_one_killed_mid_load(
    replicas: list[ServiceProcess], balancer: LoadBalancer, pg_url: str
) -> None:
    numbers = itertools.count()
    answers: list[tuple[int, str | None]] = []
    async with aiohttp.ClientSession() as session:

        async def both_ready() -> bool:
            statuses = [await _post(session, balancer.url, next(numbers)) for _ in range(4)]
            answers.extend(statuses)
            return all(s == 200 for s, _ in statuses)

        await eventually_async(both_ready, what="the load balancer passes callbacks")
        answers.extend(
            await asyncio.gather(*(_post(session, balancer.url, next(numbers)) for _ in range(40)))
        )
        served = [await _callbacks_served(session, r) for r in replicas]
        assert all(n > 0 for n in served), f"round robin over both replicas: {served}"

        # kill -9 one replica while callbacks keep coming.
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                answers.append(await _post(session, balancer.url, next(numbers)))

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await eventually(lambda: len(answers) > 120, what="load before the kill")
        replicas[0].kill()
        killed_at = len(answers)
        await eventually(lambda: len(answers) > killed_at + 300, what="load after the kill")
        stop.set()
        await asyncio.gather(*clients)

        statuses = {status for status, _ in answers}
        assert statuses == {200}, (
            f"every callback answered 200 through the load balancer: {statuses}"
        )

        # Back: the health check lets it in again, and it takes callbacks.
        replicas[0].start()
        before = await _callbacks_served(session, replicas[0])

        async def takes_callbacks() -> bool:
            answers.extend([await _post(session, balancer.url, next(numbers)) for _ in range(4)])
            return await _callbacks_served(session, replicas[0]) > before

        await eventually_async(takes_callbacks, what="the restarted replica takes callbacks again")

    assert {status for status, _ in answers} == {200}
    stored = {row["id"] for row in await fetch(pg_url, "SELECT id FROM events")}
    assert {event_id for _, event_id in answers} <= stored
    assert len(stored) == len(answers)  # every callback is a distinct event, stored once
