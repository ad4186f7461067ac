"""The consumer side of the end-to-end figures: a durable queue bound to every routing key.

It consumes without acknowledgements (auto-ack) through aiormq directly, recording only each
message's id, so the benchmark's own consumer costs as little CPU as it can on the shared cores.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import aiormq
from aiormq.abc import DeliveredMessage


class Consumer:
    """Counts the distinct message ids that reach a queue bound to `exchange` with `css.#`."""

    def __init__(self, url: str, exchange: str, *, keep_ids: bool = True) -> None:
        self.url = url
        self.exchange = exchange
        self.queue = f"bench.{uuid.uuid4().hex[:12]}"
        self.keep_ids = keep_ids
        self.ids: set[str] = set()
        self.messages = 0  # deliveries, duplicates included
        self.last_new = 0.0  # time.perf_counter() when the latest new message id arrived
        self._target = 0
        self._reached = asyncio.Event()
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._cancel: tuple[aiormq.Channel, str] | None = None

    @property
    def distinct(self) -> int:
        return len(self.ids) if self.keep_ids else self.messages

    async def open(self) -> Consumer:
        """Declare the exchange (as the service does) and the queue, bind it, start consuming."""
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.bind(exchange, "css.#")
        underlay = await channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        await underlay.basic_qos(prefetch_count=1000)
        ok = await underlay.basic_consume(self.queue, self._on_message, no_ack=True)
        self._cancel = (underlay, ok.consumer_tag or "")
        return self

    async def _on_message(self, message: DeliveredMessage) -> None:
        self.messages += 1
        if self.keep_ids:
            before = len(self.ids)
            self.ids.add(message.header.properties.message_id or "")
            if len(self.ids) > before:
                self.last_new = time.perf_counter()
        else:
            self.last_new = time.perf_counter()
        if self._target and self.distinct >= self._target:
            self._reached.set()

    async def wait_for(self, count: int, within: float) -> bool:
        """Wait until `count` distinct messages arrived; False if `within` seconds passed first."""
        self._target = count
        if self.distinct >= count:
            return True
        self._reached.clear()
        try:
            async with asyncio.timeout(within):
                await self._reached.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Delete the queue and the exchange (a run's names are its own) and disconnect."""
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed:
            return
        if self._cancel is not None:
            consuming, tag = self._cancel
            await consuming.basic_cancel(tag)  # before the queue goes: no "cancelled" warning
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)
