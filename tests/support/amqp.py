"""Test-side AMQP helpers: a durable queue bound to the exchange under test, read by deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage


@dataclass(repr=False)
class Received:
    """One delivered message, reduced to what tests check."""

    message_id: str
    routing_key: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]


@dataclass
class Tap:
    """A durable queue bound to `exchange`; collects every message it receives (auto-ack)."""

    url: str
    exchange: str
    bindings: tuple[str, ...] = ("css.#",)
    queue_name: str = field(default_factory=lambda: f"tap.{uuid.uuid4().hex[:12]}")
    received: list[Received] = field(default_factory=list, repr=False)
    _connection: aio_pika.abc.AbstractConnection | None = field(default=None, repr=False)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def open(self, *, consume: bool = True) -> Tap:
        """Connect, declare exchange and queue (idempotent), bind, and start consuming.

        With `consume=False` the queue only collects messages (on disk, persistent), which is
        what a test that crashes the broker needs: nothing is in flight to a consumer.
        """
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self.queue_name, durable=True)
        for key in self.bindings:
            await queue.bind(exchange, key)
        if consume:
            await queue.consume(self._on_message, no_ack=True)
        else:
            await self.close()
        return self

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        self._connection = None

    async def delete(self) -> None:
        """Remove the queue (the broker is shared by the whole session)."""
        await delete_queue(self.url, self.queue_name)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.received.append(
            Received(
                message_id=message.message_id or "",
                routing_key=message.routing_key or "",
                body=orjson.loads(message.body),
                raw=message.body,
                headers=dict(message.headers or {}),
                properties={
                    "content_type": message.content_type,
                    "delivery_mode": int(message.delivery_mode or 0),
                    "timestamp": message.timestamp,
                    "type": message.type,
                    "app_id": message.app_id,
                },
            )
        )
        self._arrived.set()

    async def wait_for(self, count: int, within: float = 30.0) -> list[Received]:
        """Wait until at least `count` messages arrived; fail with what did, at the deadline."""
        return await self._wait(lambda: len(self.received) >= count, f"{count} messages", within)

    async def wait_for_ids(self, ids: Iterable[str], within: float = 30.0) -> list[Received]:
        """Wait until every message_id in `ids` arrived (duplicates do not count twice)."""
        wanted = set(ids)
        return await self._wait(
            lambda: wanted <= {m.message_id for m in self.received},
            f"{len(wanted)} distinct message_ids",
            within,
        )

    async def _wait(self, done: Callable[[], bool], what: str, within: float) -> list[Received]:
        deadline = time.monotonic() + within
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"not all of {what} arrived within {within} s "
                    f"({len(self.received)} messages, {len(set(self.ids()))} distinct)"
                )
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                continue
        return self.received

    def ids(self) -> list[str]:
        return [m.message_id for m in self.received]


async def queue_depth(url: str, queue: str) -> int:
    """Messages ready in `queue` (passive declare)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def delete_exchange(url: str, exchange: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)


async def delete_queue(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
