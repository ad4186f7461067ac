"""Publishing from PostgreSQL with several replicas: each partition published by one replica, a
stream's messages in storage order, every event once, and a replica that leaves hands its
partitions over. Real RabbitMQ, real PostgreSQL, two apps on one database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from receiver.outbox.pg_broker import PG_RELAY
from receiver.settings import Settings
from receiver.storage.partitions import PARTITIONS
from tests.conftest import ClientFactory
from tests.support.amqp import Tap
from tests.support.helpers import eventually, eventually_async, snapshot
from tests.support.postgres import fetch
from tests.support.publishing import first_occurrences, per_stream, post_all

Client = TestClient[web.Request, web.Application]


def _streams(count: int, per: int, start: int = 0) -> list[dict[str, Any]]:
    return [snapshot(f"s{s}", n) for n in range(start, start + per) for s in range(count)]


async def _stored_per_stream(pg_url: str) -> dict[str, list[int]]:
    streams: dict[str, list[int]] = {}
    for row in await fetch(pg_url, "SELECT payload FROM events ORDER BY seq"):
        payload = json.loads(row["payload"])
        streams.setdefault(payload["stream_id"], []).append(payload["test_no"])
    return streams


def _owned(client: Client) -> frozenset[int]:
    assert client.app is not None
    return client.app[PG_RELAY].owned


@pytest.fixture
async def tap(amqp_url: str, exchange_name: str) -> Any:
    tap = await Tap(amqp_url, exchange_name).open()
    yield tap
    await tap.close()
    await tap.delete()


async def test_two_replicas_publish_each_stream_in_storage_order(
    aiohttp_client: ClientFactory,
    broker_settings: Callable[..., Settings],
    pg_url: str,
    tap: Tap,
) -> None:
    settings = broker_settings(database=pg_url)
    replicas = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    await eventually(
        lambda: (
            len(_owned(replicas[0])) + len(_owned(replicas[1])) == PARTITIONS
            and all(_owned(r) for r in replicas)
        ),
        what="the partitions are split",
    )
    assert not _owned(replicas[0]) & _owned(replicas[1])

    bodies = _streams(8, 30)
    await post_all(replicas[0], bodies[::2])
    await post_all(replicas[1], bodies[1::2])
    received = await tap.wait_for(len(bodies))
    assert len(tap.ids()) == len(set(tap.ids())) == len(bodies)  # once each, nothing lost
    assert per_stream(first_occurrences(received)) == await _stored_per_stream(pg_url)

    # One replica leaves: the other takes its partitions and publishes what comes next.
    await replicas[1].close()
    await eventually(lambda: len(_owned(replicas[0])) == PARTITIONS, what="the takeover")
    more = _streams(8, 5, start=30)
    await post_all(replicas[0], more)
    received = await tap.wait_for_ids(
        [row["id"] for row in await fetch(pg_url, "SELECT id FROM events")]
    )
    assert per_stream(first_occurrences(received)) == await _stored_per_stream(pg_url)

    async def all_marked() -> bool:
        # Outcomes are recorded at the end of the relay's pass, after the broker confirmed:
        # the queue may deliver a message a moment before its event is marked.
        (unpublished,) = await fetch(
            pg_url, "SELECT count(*) FROM events WHERE published_at IS NULL"
        )
        return bool(unpublished["count"] == 0)

    await eventually_async(all_marked, what="every event marked published")

    ready = await (await replicas[0].get("/readyz")).json()
    assert ready["broker"]["partitions_owned"] == PARTITIONS
    assert ready["broker"]["state"] == "connected"
