"""A broker outage while CSS keeps calling: every callback is answered 200, stored, and once the
broker is back, every event is delivered, in order per stream, none lost.

The whole service runs (HTTP, writer, relay loop), the broker is the suite's own node: stopped
for real (its AMQP port closes) while callbacks keep arriving, then started again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from receiver.app import create_app
from receiver.outbox.broker import RELAY
from testbed.broker import RabbitNode
from tests.conftest import ClientFactory
from tests.support.amqp import Tap
from tests.support.helpers import eventually, rows, snapshot, unpublished
from tests.support.publishing import first_occurrences, per_stream, stored_per_stream

STREAMS = 5


class Sender:
    """Posts one callback per stream per round, like CSS for five live streams."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self._client = client
        self.rounds = 0
        self.statuses: list[int] = []

    async def round(self) -> None:
        n = self.rounds
        self.rounds += 1
        bodies = [orjson.dumps(snapshot(f"stream-{s}", n)) for s in range(STREAMS)]
        responses = await asyncio.gather(*(self._client.post("/callbacks", data=b) for b in bodies))
        for response in responses:
            self.statuses.append(response.status)
            response.release()

    async def until(self, stop: asyncio.Event, *, max_rounds: int) -> None:
        """Keep posting until `stop` (bounded, whatever happens)."""
        limit = self.rounds + max_rounds
        while not stop.is_set() and self.rounds < limit:
            await self.round()


@pytest.mark.timeout(180)
async def test_events_survive_a_broker_outage_in_order(
    aiohttp_client: ClientFactory,
    broker_settings: Any,
    owned_broker: RabbitNode,
    exchange_name: str,
    database: Path,
) -> None:
    url = owned_broker.url
    settings = broker_settings(
        amqp_url=SecretStr(url), publish_retry_max_seconds=1.0, publish_timeout_seconds=3.0
    )
    tap = await Tap(url, exchange_name).open()
    client = await aiohttp_client(create_app(settings))
    sender = Sender(client)
    try:
        # Broker up: events flow straight through.
        for _ in range(40):
            await sender.round()
        await tap.wait_for(40 * STREAMS)
        await tap.close()  # an orderly consumer leaves before the broker goes away

        # Broker stops while callbacks keep arriving.
        stop_sending = asyncio.Event()
        outage_started = time.time()
        sending = asyncio.create_task(sender.until(stop_sending, max_rounds=400))
        await asyncio.to_thread(owned_broker.stop)
        for _ in range(60):
            await sender.round()
        ready = await client.get("/readyz")
        assert ready.status == 200  # callbacks are still accepted: ready, degraded
        report = await ready.json()
        assert report["status"] == "degraded"
        broker = report["broker"]
        assert broker["state"] == "disconnected"
        assert broker["backlog"] > 0
        assert broker["oldest_unpublished_age_seconds"] > 0
        assert "guest:guest" not in await ready.text()

        # Broker starts again, callbacks still arriving; the relay catches up by itself.
        await asyncio.to_thread(owned_broker.start)
        outage_ended = time.time()
        stop_sending.set()
        await sending
        for _ in range(20):
            await sender.round()

        assert set(sender.statuses) == {200}
        stored = rows(database)
        assert len(stored) == sender.rounds * STREAMS  # every 200 is a stored event
        await eventually(lambda: unpublished(database) == 0, within=60, what="outbox drained")
        await tap.open()
        received = await tap.wait_for_ids((row["id"] for row in stored), within=60)

        firsts = first_occurrences(received)
        assert [m.message_id for m in firsts] == [row["id"] for row in stored]
        assert per_stream(firsts) == stored_per_stream(database)  # per-stream storage order
        assert {k: sorted(v) for k, v in per_stream(firsts).items()} == {
            f"stream-{s}": list(range(sender.rounds)) for s in range(STREAMS)
        }
        broker = (await (await client.get("/readyz")).json())["broker"]
        assert (broker["state"], broker["backlog"]) == ("connected", 0)
        assert broker["oldest_unpublished_age_seconds"] is None

        during = [r for r in stored if outage_started <= r["received_at"] <= outage_ended]
        delivered_after = {m.message_id for m in received[40 * STREAMS :]}
        duplicates = len(received) - len({m.message_id for m in received})
        assert during and {r["id"] for r in during} <= delivered_after
        print(
            f"\noutage figures: {len(stored)} events in total, {len(during)} sent during the "
            f"{outage_ended - outage_started:.1f} s outage (all answered 200), "
            f"{len(delivered_after)} delivered after the restart, {duplicates} duplicates, "
            "0 lost, per-stream order kept"
        )
    finally:
        await tap.close()
        await tap.delete()


@pytest.mark.timeout(120)
async def test_an_outage_is_one_warning_and_one_info_not_an_error_per_attempt(
    aiohttp_client: ClientFactory,
    broker_settings: Any,
    owned_broker: RabbitNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiormq logs an ERROR (with a traceback) for every failed reconnect attempt and for the
    broker's close; the relay reports the outage itself, once, and its end, once."""
    settings = broker_settings(amqp_url=SecretStr(owned_broker.url), publish_retry_max_seconds=0.3)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="receiver.outbox.relay")  # to count the attempts
    client = await aiohttp_client(create_app(settings))
    relay = client.app[RELAY]
    await eventually(lambda: relay.state == "connected", what="relay connected")
    caplog.clear()

    await asyncio.to_thread(owned_broker.stop)
    await eventually(
        lambda: len(_records(caplog, "still unavailable")) >= 3, what="three failed attempts"
    )
    await asyncio.to_thread(owned_broker.start)
    await eventually(
        lambda: bool(_records(caplog, "reachable again")), within=30, what="reconnected"
    )

    at_least_warning = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in at_least_warning] == [
        ("receiver.outbox.relay", "WARNING")
    ], [r.getMessage() for r in at_least_warning]
    assert "events wait in the outbox" in at_least_warning[0].getMessage()
    assert len(_records(caplog, "reachable again")) == 1
    lost = _records(caplog, "broker connection to")
    assert [r.levelname for r in lost] == ["INFO"]  # the reason the quieted records gave
    assert "guest:guest" not in caplog.text


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]
