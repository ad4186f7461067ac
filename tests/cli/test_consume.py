"""`receiver consume`: a durable queue, one JSON line per event, acked only after printing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

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
