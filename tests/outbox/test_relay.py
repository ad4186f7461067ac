"""The relay step by step (`publish_pending`): order, and never a mark without a confirm.

The app runs with publishing off, so nothing publishes behind the test's back; each test builds
a relay on the app's real writer and reader and drives it one pass at a time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from receiver.keys import METRICS
from receiver.outbox.publisher import BrokerUnavailable
from receiver.outbox.relay import OutboxRelay
from testbed.broker import RabbitNode
from tests.conftest import ClientFactory
from tests.support.amqp import Tap, delete_exchange, queue_depth
from tests.support.helpers import eventually, rows, snapshot
from tests.support.publishing import (
    first_occurrences,
    per_stream,
    post_all,
    relay_for,
    stored_per_stream,
)

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def store(aiohttp_client: ClientFactory, make_settings: Any) -> Client:
    """The receiver with publishing off: callbacks are stored and wait in the outbox."""
    return await aiohttp_client(create_app(make_settings()))


def _sample(client: Client, name: str, labels: dict[str, str] | None = None) -> float:
    value = client.app[METRICS].registry.get_sample_value(name, labels or {})
    return value or 0.0


def _state(relay: OutboxRelay) -> str:
    return relay.state  # read afresh each time (mypy would keep the first narrowing)


def _streams(count: int, per: int) -> list[dict[str, Any]]:
    # Interleaved like real traffic: s0#0, s1#0, s2#0, s0#1, ...
    return [snapshot(f"s{s}", n) for n in range(per) for s in range(count)]


async def test_a_pass_publishes_everything_in_storage_order(
    store: Client, amqp_url: str, exchange_name: str, database: Path
) -> None:
    await post_all(store, _streams(3, 100))
    tap = await Tap(amqp_url, exchange_name).open()
    relay = relay_for(store, amqp_url, exchange_name, batch_size=64)  # several batches
    try:
        assert await relay.publish_pending() == 300
        stored = rows(database)
        assert all(row["published_at"] is not None for row in stored)
        received = await tap.wait_for(300)
        assert tap.ids() == [row["id"] for row in stored]  # one channel: exactly seq order
        assert await relay.publish_pending() == 0  # nothing left, nothing twice
        assert _sample(store, "receiver_published_total") == 300
        assert _sample(store, "receiver_publish_confirm_seconds_count") == 300
        assert per_stream(received) == stored_per_stream(database)
        assert {k: sorted(v) for k, v in per_stream(received).items()} == {
            f"s{s}": list(range(100)) for s in range(3)
        }
    finally:
        await relay.close()
        await tap.close()
        await tap.delete()


async def test_a_missing_exchange_marks_nothing_then_recovers(
    store: Client, amqp_url: str, exchange_name: str, database: Path
) -> None:
    relay = relay_for(store, amqp_url, exchange_name)
    tap: Tap | None = None
    try:
        assert await relay.publish_pending() == 0  # connects and declares the exchange
        await delete_exchange(amqp_url, exchange_name)  # an operator mistake, mid-flight
        await post_all(store, _streams(2, 10))

        with pytest.raises(BrokerUnavailable, match="NOT_FOUND"):
            await relay.publish_pending()
        stored = rows(database)
        assert len(stored) == 20
        assert all(row["published_at"] is None for row in stored)
        failed = [row for row in stored if row["publish_attempts"] == 1]
        assert failed, "the refused publishes are recorded as attempts"
        assert all("NOT_FOUND" in row["last_error"] for row in failed)
        assert _sample(store, "receiver_publish_failures_total", {"reason": "channel_closed"}) > 0
        assert _state(relay) == "disconnected"

        tap = await Tap(amqp_url, exchange_name).open()
        assert await relay.publish_pending() == 20  # reconnects, declares again, catches up
        assert _state(relay) == "connected"
        await tap.wait_for(20)
        stored = rows(database)
        assert sorted(tap.ids()) == sorted(row["id"] for row in stored)
        assert all(row["published_at"] is not None for row in stored)
        assert all(row["last_error"] is None for row in stored)
    finally:
        await relay.close()
        if tap is not None:
            await tap.close()
            await tap.delete()


async def test_a_broker_crash_mid_pass_marks_only_confirmed_events(
    store: Client, owned_broker: RabbitNode, exchange_name: str, database: Path
) -> None:
    url = owned_broker.url
    await post_all(store, _streams(4, 1000))
    # The queue only collects (no consumer), so every confirmed message must be on its disk.
    queue = await Tap(url, exchange_name).open(consume=False)
    relay = relay_for(store, url, exchange_name)
    try:
        publishing = asyncio.create_task(relay.publish_pending())
        await eventually(
            lambda: _sample(store, "receiver_published_total") >= 300 or publishing.done(),
            what="a few hundred confirms",
        )
        await asyncio.to_thread(owned_broker.kill)  # SIGKILL: no goodbye to the client
        with pytest.raises(BrokerUnavailable):
            await publishing
        marked = {row["id"] for row in rows(database, "published_at IS NOT NULL")}
        assert 0 < len(marked) < 4000

        await asyncio.to_thread(owned_broker.start)
        depth = await queue_depth(url, queue.queue_name)
        assert depth >= len(marked)
        await queue.open()
        survived = await queue.wait_for(depth)
        # Never marked without a confirm: every marked event survived the crash.
        assert marked <= {m.message_id for m in survived}

        assert await relay.publish_pending() == 4000 - len(marked)
        stored = rows(database)
        received = await queue.wait_for(depth + 4000 - len(marked))
        firsts = first_occurrences(received)
        assert [m.message_id for m in firsts] == [row["id"] for row in stored]
        assert per_stream(firsts) == stored_per_stream(database)
        assert {k: sorted(v) for k, v in per_stream(firsts).items()} == {
            f"s{s}": list(range(1000)) for s in range(4)
        }
        assert all(row["published_at"] is not None for row in stored)
    finally:
        await relay.close()
        await queue.close()


async def test_a_hung_broker_times_out_and_marks_nothing(
    store: Client, owned_broker: RabbitNode, exchange_name: str, database: Path
) -> None:
    url = owned_broker.url
    queue = await Tap(url, exchange_name).open(consume=False)
    relay = relay_for(store, url, exchange_name, timeout=1.0)
    try:
        assert await relay.publish_pending() == 0  # connected
        await post_all(store, _streams(2, 25))
        await asyncio.to_thread(owned_broker.pause)  # SIGSTOP: the socket stays open, silent
        try:
            with pytest.raises(BrokerUnavailable, match="timeout"):
                await relay.publish_pending()
            stored = rows(database)
            assert all(row["published_at"] is None for row in stored)
            assert {row["last_error"] for row in stored if row["publish_attempts"]} == {"timeout"}
            assert _sample(store, "receiver_publish_failures_total", {"reason": "timeout"}) > 0
        finally:
            await asyncio.to_thread(owned_broker.resume)

        assert await relay.publish_pending() == 50  # retried, not lost
        assert all(row["published_at"] is not None for row in rows(database))
        await queue.open()
        # The frozen broker may still have taken the first attempt: duplicates, never gaps.
        received = await queue.wait_for_ids(row["id"] for row in rows(database))
        assert len({m.message_id for m in received}) == 50
    finally:
        await relay.close()
        await queue.close()
        await queue.delete()
