"""`receiver consume`: a durable queue, one JSON line per event, acked only after printing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from receiver.app import create_app
from tests.conftest import ClientFactory
from tests.support.amqp import delete_queue, queue_depth
from tests.support.helpers import payload, rows, signed, snapshot
from tests.support.publishing import post_all


async def test_consume_prints_bound_events_as_json_lines(
    aiohttp_client: ClientFactory,
    broker_settings: Any,
    amqp_url: str,
    exchange_name: str,
    database: Path,
) -> None:
    queue = f"consume.{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
        "RECEIVER_AMQP_URL": amqp_url,
        "RECEIVER_AMQP_EXCHANGE": exchange_name,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "consume",
        "--bind", "css.stream_begin", "--queue", queue, "--count", "2", "--meta",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        banner = await asyncio.wait_for(process.stderr.readline(), timeout=30)
        assert b"consuming queue" in banner, banner
        assert b"guest:guest" not in banner

        client = await aiohttp_client(create_app(broker_settings()))
        begins = [signed({**payload("push_begin_1.json"), "sequence": str(n)}) for n in range(2)]
        pretty = json.dumps(begins[0], indent=2).encode()  # a payload spanning many lines
        assert (await client.post("/callbacks", data=pretty)).status == 200
        await post_all(client, [snapshot("s", 0), begins[1]])
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 2  # only the bound kind, one line each although payloads span lines
    events = [json.loads(line) for line in lines]
    stored = {r["id"]: r for r in rows(database, "kind = 'stream_begin'")}
    assert [e["message_id"] for e in events] == list(stored)
    for event in events:
        assert event["routing_key"] == "css.stream_begin"
        assert event["replay"] is False
        assert event["event"]["id"] == event["message_id"]
        assert event["event"]["payload"] == json.loads(stored[event["message_id"]]["payload"])
    assert await queue_depth(amqp_url, queue) == 0  # both acked
    await delete_queue(amqp_url, queue)


async def _consume(amqp_url: str, exchange_name: str, *args: str) -> tuple[int, str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
        "RECEIVER_AMQP_URL": amqp_url,
        "RECEIVER_AMQP_EXCHANGE": exchange_name,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "consume", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_consume_quorum_dead_letters_a_message_that_keeps_failing(
    amqp_url: str, exchange_name: str
) -> None:
    """`--quorum`: a quorum queue (its type cannot be redeclared as classic) whose message is
    moved to `<queue>.dead` once it was delivered `--delivery-limit` times without an ack."""
    queue = f"consume.q.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
            "RECEIVER_AMQP_URL": amqp_url,
            "RECEIVER_AMQP_EXCHANGE": exchange_name,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "receiver", "consume", "--quorum", "--delivery-limit", "2",
            "--queue", queue, "--count", "1",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stderr is not None
            banner = await asyncio.wait_for(process.stderr.readline(), timeout=30)
            assert b"consuming quorum queue" in banner, banner  # declared and bound
            await exchange.publish(aio_pika.Message(b'{"id": "printed"}'), routing_key="css.x")
            out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, err
        assert json.loads(out) == {"id": "printed"}

        classic = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await classic.declare_queue(queue, durable=True)  # no x-queue-type: refused

        # A message every consumer gives back: after 2 deliveries it is dead-lettered.
        await exchange.publish(aio_pika.Message(b'{"id": "poison"}'), routing_key="css.x")
        failing = await connection.channel()
        q = await failing.get_queue(queue, ensure=False)
        deliveries = 0
        while deliveries < 10:
            message = await q.get(fail=False, timeout=5)
            if message is None:
                break
            deliveries += 1
            await message.reject(requeue=True)
        assert deliveries == 3  # the limit counts redeliveries: 1 + 2, then dead-lettered
        assert await queue_depth(amqp_url, f"{queue}.dead") == 1

        code, _, refusal = await _consume(amqp_url, exchange_name, "--queue", queue, "--count", "1")
        assert code == 1 and "exists with other arguments" in refusal
    finally:
        await connection.close()
        await delete_queue(amqp_url, queue)
        await delete_queue(amqp_url, f"{queue}.dead")
