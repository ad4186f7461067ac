"""The publisher sends many messages per write: order, window refills and large bodies hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from tests.conftest import ClientFactory
from tests.support.amqp import Tap
from tests.support.helpers import rows, snapshot
from tests.support.publishing import post_all, relay_for

Client = TestClient[web.Request, web.Application]


async def test_a_small_window_refilled_many_times_keeps_storage_order_and_big_bodies_whole(
    aiohttp_client: ClientFactory,
    make_settings: Any,
    amqp_url: str,
    exchange_name: str,
    database: Path,
) -> None:
    store: Client = await aiohttp_client(create_app(make_settings()))
    big = {**snapshot("big", 0), "blob": "x" * 300_000}  # > RabbitMQ's frame_max (128 KiB)
    await post_all(store, [snapshot("s", n) for n in range(300)])
    await post_all(store, [big])
    await post_all(store, [snapshot("s", n) for n in range(300, 600)])
    tap = await Tap(amqp_url, exchange_name).open()
    relay = relay_for(store, amqp_url, exchange_name, in_flight=7, batch_size=50)
    try:
        assert await relay.publish_pending() == 601
        received = await tap.wait_for(601)
        assert tap.ids() == [row["id"] for row in rows(database)]
        assert [m.body["payload"].get("blob") for m in received].count(big["blob"]) == 1
        assert all(row["published_at"] is not None for row in rows(database))
    finally:
        await relay.close()
        await tap.close()
        await tap.delete()
