"""The broker side of a scenario: a private RabbitMQ node, and a queue that sees every message.

The node is the test suite's `RabbitNode` (`testbed.broker`: private ports, data and cookie;
always stopped). A scenario with publishing on gets its own exchange and a durable audit queue
bound to `css.#` *before* any traffic, so every message the service publishes lands there and
stays (on disk, persistent) through broker stops and crashes. After the scenario the queue is
drained and the audit (`tests.reliability.scenarios.delivery`) compares it with what CSS was
told and what the database holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aio_pika
import aiohttp
import orjson
from aio_pika.abc import AbstractIncomingMessage

from testbed.broker import RabbitNode
from tests.reliability.scenarios import common
from tests.reliability.scenarios.cssload import ID_FIELD
from tests.support.helpers import inbox_rows

DRAIN_SECONDS: Final = 120.0
PUBLISHED_SECONDS: Final = 120.0


@asynccontextmanager
async def node(base_dir: Path) -> AsyncIterator[RabbitNode]:
    """A private RabbitMQ node for the chaos command; stopped at the end, also on failure."""
    rabbit = RabbitNode(base_dir)
    try:
        await asyncio.to_thread(rabbit.start)
        yield rabbit
    finally:
        await asyncio.to_thread(rabbit.stop)
        await asyncio.to_thread(rabbit.stop_epmd)


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message found in the audit queue, reduced to what the audit compares."""

    message_id: str
    event_id: str  # the envelope's `id`: must equal message_id
    cssload_id: str | None  # which generated event it carries (payload field)
    stream_id: str | None


def delivered(message: AbstractIncomingMessage) -> Delivered:
    envelope: dict[str, Any] = orjson.loads(message.body)
    payload = envelope.get("payload")
    cssload_id = payload.get(ID_FIELD) if isinstance(payload, dict) else None
    return Delivered(
        message_id=message.message_id or "",
        event_id=str(envelope.get("id")),
        cssload_id=cssload_id if isinstance(cssload_id, str) else None,
        stream_id=envelope.get("stream_id"),
    )


@dataclass(slots=True)
class Publishing:
    """One scenario's exchange and its audit queue on `node`."""

    node: RabbitNode
    exchange: str = field(default_factory=lambda: f"chaos.{uuid.uuid4().hex[:10]}")
    queue: str = field(default_factory=lambda: f"chaos-audit.{uuid.uuid4().hex[:10]}")

    def env(self, **extra: str) -> dict[str, str]:
        """Service settings: publish to our exchange, retry often (a test cannot wait 30 s)."""
        return {
            "RECEIVER_AMQP_URL": self.node.url,
            "RECEIVER_AMQP_EXCHANGE": self.exchange,
            "RECEIVER_PUBLISH_RETRY_MAX_SECONDS": "1",
            "RECEIVER_PUBLISH_TIMEOUT_SECONDS": "5",
            **extra,
        }

    async def bind(self) -> None:
        """Declare the exchange and the durable queue, bound to every routing key."""
        connection = await aio_pika.connect(self.node.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(exchange, "css.#")

    async def drain(self, within: float = DRAIN_SECONDS) -> list[Delivered]:
        """Take every message out of the queue, in queue order. Call it when nothing publishes
        any more (the service stopped): the count read first is then the whole queue."""
        got: list[Delivered] = []
        connection = await aio_pika.connect(self.node.url)
        async with connection, asyncio.timeout(within):
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, passive=True)
            wanted = int(queue.declaration_result.message_count or 0)
            complete = asyncio.Event()

            async def take(message: AbstractIncomingMessage) -> None:
                got.append(delivered(message))
                if len(got) >= wanted:
                    complete.set()

            if wanted:
                tag = await queue.consume(take, no_ack=True)
                await complete.wait()
                await queue.cancel(tag)
            left = await channel.declare_queue(self.queue, passive=True)
            if left.declaration_result.message_count:
                raise RuntimeError("messages were still being published while draining")
        return got

    async def delete(self) -> None:
        connection = await aio_pika.connect(self.node.url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)


@asynccontextmanager
async def publishing(rabbit: RabbitNode | None) -> AsyncIterator[Publishing | None]:
    """An exchange and bound audit queue on `rabbit` (None: publishing stays off)."""
    if rabbit is None:
        yield None
        return
    if not rabbit.running:
        await asyncio.to_thread(rabbit.start)
    pub = Publishing(rabbit)
    await pub.bind()
    try:
        yield pub
    finally:
        if rabbit.running:
            await pub.delete()


def outbox(database: Path) -> tuple[set[str], int, int]:
    """(ids marked published, unpublished count, unroutable count), read-only as an operator.

    Acknowledged callbacks not folded yet count as unpublished: they will be events to publish.
    The inbox is read first: a callback the fold moves in between is then counted twice (the
    caller polls again) rather than not at all (a drained outbox that is not).
    """
    unfolded = inbox_rows(database)
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, published_at, last_error FROM events").fetchall()
    finally:
        conn.close()
    marked = {row[0] for row in rows if row[1] is not None}
    unroutable = sum(1 for row in rows if row[1] is not None and row[2] == "unroutable")
    return marked, len(rows) - len(marked) + int(unfolded), unroutable


def marked_count(database: Path) -> int:
    """How many events are marked published (cheap enough to poll)."""
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        (count,) = conn.execute(
            "SELECT count(*) FROM events WHERE published_at IS NOT NULL"
        ).fetchone()
    finally:
        conn.close()
    return int(count)


async def wait_published(database: Path, within: float = PUBLISHED_SECONDS) -> int:
    """Poll until the outbox is empty; returns what is still unpublished at the deadline."""
    deadline = time.monotonic() + within
    while True:
        _, left, _ = await asyncio.to_thread(outbox, database)
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)  # polling the database, bounded by the deadline


async def wait_relay_down(
    session: aiohttp.ClientSession, url: str, within: float = 60.0
) -> dict[str, Any]:
    """Poll /readyz until the relay has ended its pass on a broker failure; its broker report.

    `last_error` shows only once the pass is over: its marks are committed by then, so the
    outbox no longer changes until the broker is back.
    """
    deadline = time.monotonic() + within
    while True:
        _, report = await common.get_json(session, f"{url}/readyz")
        broker = report.get("broker", {}) if isinstance(report, dict) else {}
        if broker.get("state") == "disconnected" and broker.get("last_error"):
            return dict(broker)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the relay did not report the broker down: {report}")
        await asyncio.sleep(0.02)  # polling, bounded by the deadline
