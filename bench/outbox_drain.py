"""Outbox drain rate against raw aio-pika confirmed publishing, on the same broker and bodies.

    .venv/bin/python bench/outbox_drain.py amqp://guest:guest@127.0.0.1:5672/ [events] [rounds]

Builds a SQLite outbox of `events` screenshot callbacks (about 1 KiB each), then alternates:
raw aio-pika (`Exchange.publish`, persistent, mandatory, 256 confirms in flight through a
semaphore) and `OutboxRelay.publish_pending()` (read, publish, confirm, mark), each into a bound
durable queue that is purged between runs. Prints msg/s per run and the median ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import orjson
from prometheus_client import CollectorRegistry

from receiver.db import connect
from receiver.envelope import Outgoing, from_row
from receiver.migrate import apply_migrations
from receiver.outbox import unpublished
from receiver.publish_metrics import PublishMetrics
from receiver.publisher import Publisher
from receiver.relay import OutboxRelay
from receiver.store import INSERT_EVENT
from receiver.writer import EventWriter

IN_FLIGHT = 256


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
    rows = [
        (str(uuid.uuid4()), 200, "snapshot", f"k{n}", "test.app", "live", f"stream-{n % 50}",
         1622599925.0 + n, None, time.time(), None, None, body(n))
        for n in range(events)
    ]  # fmt: skip
    await conn.execute("BEGIN")
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


async def relay(url: str, exchange: str, path: Path) -> float:
    read = await connect(path, readonly=True)
    writer = EventWriter(path)
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
        return count / (time.perf_counter() - started)
    finally:
        await outbox.close()
        await writer.close()
        await read.close()


async def main(url: str, events: int, rounds: int) -> None:
    path = Path(tempfile.mkdtemp()) / "bench.db"
    await build(path, events)
    exchange, queue_name = f"bench.{uuid.uuid4().hex[:8]}", f"bench.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(queue_name, durable=True)
    await queue.bind(ex, "css.#")
    ratios = []
    try:
        for n in range(rounds):
            await queue.purge()
            baseline = await raw(url, exchange, path)
            await queue.purge()
            await reset(path)
            drained = await relay(url, exchange, path)
            ratios.append(drained / baseline)
            print(f"round {n + 1}: raw aio-pika {baseline:,.0f} msg/s, outbox {drained:,.0f} "
                  f"msg/s, ratio {drained / baseline:.2f}", flush=True)  # fmt: skip
            await reset(path)
        print(f"median ratio outbox/raw: {statistics.median(ratios):.2f} ({events} events)")
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await ex.delete()
        await connection.close()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    args = sys.argv[1:]
    events = int(args[1]) if len(args) > 1 else 20000
    rounds = int(args[2]) if len(args) > 2 else 3
    asyncio.run(main(args[0], events, rounds))
