"""What operators see: /readyz broker states, unroutable events, metrics, masked secrets."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from receiver.app import create_app
from receiver.outbox.publisher import (
    BrokerUnavailable,
    OutageNoiseFilter,
    Publisher,
    quiet_outage_noise,
)
from testbed.service import free_port
from tests.conftest import ClientFactory
from tests.support.amqp import Tap
from tests.support.helpers import (
    eventually,
    eventually_async,
    payload,
    rows,
    signed,
    snapshot,
    unpublished,
)
from tests.support.publishing import post_all

PASSWORD = "s3cret-Broker-pw"


def _dead_broker() -> SecretStr:
    """A URL with a password, pointing at a loopback port nothing listens on."""
    return SecretStr(f"amqp://guest:{PASSWORD}@127.0.0.1:{free_port()}/")


def _begin(n: int) -> dict[str, Any]:
    return signed({**payload("push_begin_1.json"), "sequence": str(n)})


def _end(n: int) -> dict[str, Any]:
    return signed({**payload("stream_end_0.json"), "sequence": str(n)})


async def test_readyz_says_disabled_without_a_broker_url(
    aiohttp_client: ClientFactory, make_settings: Any
) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    await post_all(client, [snapshot("s", n) for n in range(3)])
    response = await client.get("/readyz")
    assert response.status == 200
    report = await response.json()
    assert report["status"] == "ok"
    broker = report["broker"]
    assert broker["state"] == "disabled"
    assert broker["backlog"] == 3  # events wait in the outbox
    assert isinstance(broker["oldest_unpublished_age_seconds"], float)
    assert broker["oldest_unpublished_age_seconds"] >= 0
    assert "url" not in broker
    metrics = await (await client.get("/metrics")).text()
    assert "receiver_outbox_backlog 3.0" in metrics
    assert "receiver_broker_connected 0.0" in metrics


async def test_readyz_degraded_while_the_broker_is_unreachable(
    aiohttp_client: ClientFactory, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _dead_broker()
    client = await aiohttp_client(
        create_app(make_settings(amqp_url=url, publish_retry_max_seconds=0.5))
    )
    await post_all(client, [snapshot("s", 0)])  # still accepted: 200
    report: dict[str, Any] = {}

    async def failed_once() -> bool:
        nonlocal report
        response = await client.get("/readyz")
        assert response.status == 200  # degraded is still ready: callbacks are stored
        report = await response.json()
        return "last_error" in report["broker"]

    await eventually_async(failed_once, what="a failed connection attempt")
    broker = report["broker"]
    assert report["status"] == "degraded"
    assert broker["state"] == "disconnected"
    assert broker["backlog"] == 1
    assert broker["oldest_unpublished_age_seconds"] >= 0
    assert broker["url"].startswith("amqp://guest:***@127.0.0.1:")
    assert "cannot connect" in broker["last_error"]
    text = str(report) + "".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in text  # neither in /readyz nor in any log line
    metrics = await (await client.get("/metrics")).text()
    assert PASSWORD not in metrics


async def test_readyz_ok_when_connected(
    aiohttp_client: ClientFactory, broker_settings: Any
) -> None:
    client = await aiohttp_client(create_app(broker_settings()))
    report: dict[str, Any] = {}

    async def connected() -> bool:
        nonlocal report
        report = await (await client.get("/readyz")).json()
        return bool(report["broker"]["state"] == "connected")

    await eventually_async(connected, what="relay connected")
    assert report["status"] == "ok"
    assert report["broker"]["backlog"] == 0
    assert report["broker"]["oldest_unpublished_age_seconds"] is None
    assert "guest:guest" not in str(report)


async def test_unroutable_events_are_counted_marked_and_logged_once(
    aiohttp_client: ClientFactory,
    broker_settings: Any,
    amqp_url: str,
    exchange_name: str,
    database: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await aiohttp_client(create_app(broker_settings()))
    await post_all(client, [_begin(n) for n in range(3)] + [_end(n) for n in range(2)])
    await eventually(lambda: unpublished(database) == 0, what="unroutable events handled")
    for row in rows(database):
        assert row["published_at"] is not None  # handled: not retried forever
        assert row["last_error"] == "unroutable"
        assert row["publish_attempts"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_unroutable_total{routing_key="css.stream_begin"} 3.0' in metrics
    assert 'receiver_unroutable_total{routing_key="css.stream_end"} 2.0' in metrics
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("'css.stream_begin'" in w for w in warnings) == 1
    assert sum("'css.stream_end'" in w for w in warnings) == 1

    # Once a queue is bound, the same kind is routed normally.
    tap = await Tap(amqp_url, exchange_name).open()
    try:
        await post_all(client, [_begin(99)])
        (message,) = await tap.wait_for(1)
        assert message.body["payload"]["sequence"] == "99"
        await eventually(lambda: unpublished(database) == 0)
        assert rows(database)[-1]["last_error"] is None
    finally:
        await tap.close()
        await tap.delete()


async def test_events_wait_in_the_outbox_across_a_restart(
    aiohttp_client: ClientFactory,
    make_settings: Any,
    broker_settings: Any,
    amqp_url: str,
    exchange_name: str,
    database: Path,
) -> None:
    down = await aiohttp_client(create_app(make_settings(amqp_url=_dead_broker())))
    await post_all(down, [snapshot("s", n) for n in range(30)])
    await down.close()
    assert unpublished(database) == 30

    tap = await Tap(amqp_url, exchange_name).open()
    try:
        await aiohttp_client(create_app(broker_settings()))  # the first pass runs at start
        await tap.wait_for(30)
        assert tap.ids() == [row["id"] for row in rows(database)]
        await eventually(lambda: unpublished(database) == 0)
    finally:
        await tap.close()
        await tap.delete()


@pytest.mark.parametrize("debug", [False, True])
def test_aiormq_outage_records_become_debug_other_records_stay(
    caplog: pytest.LogCaptureFixture, debug: bool
) -> None:
    """What the outage filter does to aiormq's records, by the library's own logger."""
    quiet_outage_noise()
    quiet_outage_noise()  # idempotent: one filter, however many publishers
    library = logging.getLogger("aiormq.connection")
    assert sum(isinstance(f, OutageNoiseFilter) for f in library.filters) == 1
    caplog.set_level(logging.DEBUG if debug else logging.INFO)

    library.error("error when creating transport: %r", ConnectionRefusedError(111, "refused"))
    library.warning("Cancelling cause reader exited abnormally", exc_info=ConnectionResetError())
    library.warning("Connection %r was blocked by: %r", "conn", "low on disk")
    library.error("Unexpected frame %r", "frame")

    shown = [(r.levelname, r.getMessage()[:30]) for r in caplog.records]
    quieted = [
        ("DEBUG", "error when creating transport:"),
        ("DEBUG", "Cancelling cause reader exited"),
    ]
    assert shown == [
        *(quieted if debug else []),
        ("WARNING", "Connection 'conn' was blocked "),
        ("ERROR", "Unexpected frame 'frame'"),
    ]


async def test_a_connect_that_times_out_leaves_no_unclosed_connection() -> None:
    """A broker that accepts TCP but never answers: the half-made connection is closed, not left
    for the garbage collector (aio-pika then schedules a close that may never be awaited)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{port}/", "x", timeout=0.5)
        with pytest.raises(BrokerUnavailable):
            await publisher.connect()
        assert accepted  # it did get as far as a TCP connection
        unclosed = [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, aio_pika.Connection) and not obj.is_closed
        ]
        assert unclosed == []
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
