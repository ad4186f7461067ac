"""Outbox drain rate against raw aio-pika confirmed publishing, on the same broker and messages.

Builds a SQLite outbox of `events` screenshot callbacks (about 1 KiB each), then alternates:
raw aio-pika (`Exchange.publish`, persistent, mandatory, 256 confirms in flight through a
semaphore, the messages built beforehand) and `OutboxRelay.publish_pending()` (read, publish,
confirm, and mark through the writer process), each into a bound durable queue that is purged
between runs. The ratio is taken within each round.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import orjson
from prometheus_client import CollectorRegistry

from receiver.outbox.envelope import Outgoing, from_row
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.publisher import Publisher
from receiver.outbox.queries import unpublished
from receiver.outbox.relay import OutboxRelay
from receiver.storage.connect import connect
from receiver.storage.fold_worker import FoldWorker
from receiver.storage.inbox_file import prepare_inbox
from receiver.storage.migrations import apply_migrations
from receiver.storage.rows import INSERT_EVENT

IN_FLIGHT = 256
_BUILD_CHUNK = 10_000


@dataclass
class Drain:
    """msg/s of each round, both sides."""

    events: int
    raw: list[float] = field(default_factory=list)
    outbox: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return float(statistics.median(o / r for o, r in zip(self.outbox, self.raw, strict=True)))

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "rounds": len(self.raw),
            "raw_msg_per_s": round(statistics.median(self.raw), 1),
            "outbox_msg_per_s": round(statistics.median(self.outbox), 1),
            "ratio": round(self.ratio, 3),
            "raw_runs": [round(r, 1) for r in self.raw],
            "outbox_runs": [round(o, 1) for o in self.outbox],
        }


def body(n: int) -> str:
    return orjson.dumps(
        {
            "app": "test.app",
            "appname": "live",
            "channel_id": f"stream-{n % 50}",
            "create_time": 1622599925 + n,
            "event_type": 200,
            "file_size": 30670,
            "height": 720,
            "pic_full_url": f"http://bucket.cos.ap-x.myqcloud.com/ch/shot-{n}-1280x720.jpg",
            "pic_url": f"/ch/shot-{n}-1280x720.jpg",
            "sign": "ca3e25e5dc17a6f9909a9ae7281e300d",
            "stream_id": f"stream-{n % 50}",
            "stream_param": "txSecret=ca3e25e5dc17a6f9909a9ae7281e300d&txTime=60B83800",
            "t": 1622600525,
            "width": 1280,
            "task_id": "1867908378267662126",
        }
    ).decode()


async def build(path: Path, events: int) -> None:
    conn = await connect(path)
    await apply_migrations(conn)
    await conn.execute("BEGIN")
    for start in range(0, events, _BUILD_CHUNK):
        rows = [
            (str(uuid.uuid4()), 200, "snapshot", f"k{n}", "test.app", "live", f"stream-{n % 50}",
             1622599925.0 + n, None, time.time(), None, None, body(n), None)
            for n in range(start, min(events, start + _BUILD_CHUNK))
        ]  # fmt: skip
        await conn.executemany(INSERT_EVENT, rows)
    await conn.execute("COMMIT")
    await conn.close()


async def reset(path: Path) -> None:
    conn = await connect(path)
    await conn.execute("UPDATE events SET published_at = NULL, publish_attempts = 0")
    await conn.close()


async def raw(url: str, exchange: str, path: Path) -> float:
    """Raw aio-pika: the same messages, published with 256 confirms in flight."""
    conn = await connect(path, readonly=True)
    messages = [from_row(r) for r in await unpublished(conn, 0, 10**9)]
    await conn.close()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(m: Outgoing) -> None:
            try:
                await target.publish(
                    aio_pika.Message(
                        m.body,
                        message_id=m.message_id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        type=m.properties.message_type,
                        app_id="receiver",
                        headers=m.properties.headers,
                    ),
                    m.routing_key,
                    mandatory=True,
                )
            finally:
                gate.release()

        started = time.perf_counter()
        tasks = []
        for m in messages:
            await gate.acquire()
            tasks.append(asyncio.create_task(one(m)))
        await asyncio.gather(*tasks)
        return len(messages) / (time.perf_counter() - started)


async def relay(url: str, exchange: str, path: Path, events: int) -> float:
    """The outbox relay as the service runs it: read, publish, confirm, mark (fold process)."""
    read = await connect(path, readonly=True)
    read.row_factory = None  # as the service opens the relay's reader (receiver.outbox.broker)
    await asyncio.to_thread(prepare_inbox, path)
    writer = FoldWorker(path)
    await writer.start()
    metrics = PublishMetrics.create(CollectorRegistry())
    publisher = Publisher(url, exchange, in_flight=IN_FLIGHT, metrics=metrics)
    await publisher.connect()  # outside the timed part, like the raw run
    outbox = OutboxRelay(
        publisher=publisher,
        reader=read,
        writer=writer,
        metrics=metrics,
        clock=time.time,
    )
    try:
        started = time.perf_counter()
        count = await outbox.publish_pending()
        elapsed = time.perf_counter() - started
    finally:
        await outbox.close()
        await writer.close()
        await read.close()
    left = await _unpublished(path)
    if count != events or left:
        raise AssertionError(f"the relay took {count} of {events} events; {left} left unpublished")
    return events / elapsed


async def _unpublished(path: Path) -> int:
    conn = await connect(path, readonly=True)
    try:
        async with conn.execute("SELECT count(*) FROM events WHERE published_at IS NULL") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row is not None else -1
    finally:
        await conn.close()


async def measure_drain(
    url: str, *, events: int, rounds: int, log: Callable[[str], object] = print
) -> Drain:
    """`rounds` rounds of (raw aio-pika, outbox relay) over the same backlog of `events`."""
    result = Drain(events)
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as scratch:
        path = Path(scratch) / "drain.db"
        log(f"  building an outbox of {events:,} events")
        await build(path, events)
        exchange, queue_name = f"bench.{uuid.uuid4().hex[:12]}", f"bench.{uuid.uuid4().hex[:12]}"
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
            queue = await channel.declare_queue(queue_name, durable=True)
            await queue.bind(ex, "css.#")
            for n in range(rounds):
                await queue.purge()
                result.raw.append(await raw(url, exchange, path))
                await queue.purge()
                await reset(path)
                drained = await relay(url, exchange, path, events)
                result.outbox.append(drained)
                await reset(path)
                log(
                    f"  round {n + 1}/{rounds}: raw aio-pika {result.raw[-1]:8,.0f} msg/s, "
                    f"outbox {drained:8,.0f} msg/s, ratio {drained / result.raw[-1]:.2f}"
                )
            await queue.delete(if_unused=False, if_empty=False)
            await ex.delete()
        finally:
            await connection.close()
    return result
