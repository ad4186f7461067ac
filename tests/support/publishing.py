"""Helpers for publishing tests: store many callbacks fast, build a relay on a running app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.outbox.broker import PUBLISH_METRICS
from receiver.outbox.publisher import Publisher
from receiver.outbox.relay import OutboxRelay
from receiver.storage.context import FOLDER, READER
from tests.support.amqp import Received
from tests.support.helpers import folded, rows


async def post_all(
    client: TestClient[web.Request, web.Application],
    bodies: Sequence[dict[str, Any]],
    *,
    concurrency: int = 64,
) -> None:
    """POST every body (concurrently, like CSS under load); each must be answered 200."""
    encoded = [orjson.dumps(body) for body in bodies]
    gate = asyncio.Semaphore(concurrency)

    async def post(data: bytes) -> int:
        async with gate, client.post("/callbacks", data=data) as response:
            await response.read()
            return response.status

    statuses = await asyncio.gather(*(post(data) for data in encoded))
    assert statuses == [200] * len(bodies)
    await folded(client)  # the relay publishes folded events only


def relay_for(
    client: TestClient[web.Request, web.Application],
    url: str,
    exchange: str,
    *,
    timeout: float = 5.0,
    in_flight: int = 256,
    batch_size: int = 500,
) -> OutboxRelay:
    """A relay on the app's own writer and reader, driven by the test (`publish_pending`)."""
    app = client.app
    metrics = app[PUBLISH_METRICS]
    publisher = Publisher(url, exchange, in_flight=in_flight, timeout=timeout, metrics=metrics)
    return OutboxRelay(
        publisher=publisher,
        reader=app[READER],
        writer=app[FOLDER],
        metrics=metrics,
        clock=time.time,
        batch_size=batch_size,
    )


class _HasMessageId(Protocol):
    @property
    def message_id(self) -> str: ...


M = TypeVar("M", bound=_HasMessageId)


def first_occurrences(received: Sequence[M]) -> list[M]:
    """What a consumer that skips already-seen message_ids processes, in arrival order."""
    seen: set[str] = set()
    firsts = []
    for message in received:
        if message.message_id not in seen:
            seen.add(message.message_id)
            firsts.append(message)
    return firsts


def per_stream(messages: Sequence[Received]) -> dict[str, list[int]]:
    """The `test_no` of each stream's messages, in the order given."""
    streams: dict[str, list[int]] = {}
    for message in messages:
        payload = message.body["payload"]
        streams.setdefault(payload["stream_id"], []).append(payload["test_no"])
    return streams


def stored_per_stream(database: Path) -> dict[str, list[int]]:
    """The `test_no` of each stream's stored events, in storage order (`seq`).

    Concurrent posts may be stored in another order than they were numbered; the contract is
    storage order, so that is what delivery is compared with.
    """
    streams: dict[str, list[int]] = {}
    for row in rows(database):
        payload = orjson.loads(row["payload"])
        streams.setdefault(payload["stream_id"], []).append(payload["test_no"])
    return streams
