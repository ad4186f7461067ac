"""The pending-body budget: every body still arriving is counted, CSS-sized bodies keep a share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from receiver.app import create_app
from receiver.errors import Overloaded
from receiver.settings import Settings
from receiver.web.budget import BODY_BUDGET, BodyBudget
from tests.conftest import ClientFactory
from tests.support.helpers import eventually, payload, signed

LIMIT = 256 * 1024
HELD = 60 * 1024  # under the 64 KiB that bodies once had to exceed to be counted


@pytest.fixture
async def client(aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]) -> Any:
    settings = make_settings(
        max_body_bytes=64 * 1024, max_pending_body_bytes=LIMIT, body_read_timeout_seconds=60
    )
    return await aiohttp_client(create_app(settings))


class _Partial:
    """A callback whose headers and first bytes were sent, the rest held back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def status(self) -> int:
        line = await asyncio.wait_for(self.reader.readline(), 10)
        return int(line.split()[1])


@pytest.fixture
async def open_partial(client: Any) -> AsyncIterator[Callable[..., Any]]:
    opened: list[_Partial] = []

    async def start(body: bytes, sent: int) -> _Partial:
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        head = f"POST /callbacks HTTP/1.1\r\nHost: r\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body[:sent])
        await writer.drain()
        partial = _Partial(reader, writer)
        opened.append(partial)
        return partial

    yield start
    for partial in opened:
        partial.writer.close()


def _budget(client: Any) -> BodyBudget:
    budget: BodyBudget = client.server.app[BODY_BUDGET]
    return budget


async def test_bodies_under_64_kib_still_arriving_are_counted(
    client: Any, open_partial: Callable[..., Any]
) -> None:
    """Thousands of connections each holding a body just under a threshold add up: counted."""
    held = [await open_partial(b"x" * HELD, 1024) for _ in range(3)]
    await eventually(lambda: _budget(client).used == 3 * HELD, within=10, what="3 bodies counted")
    # A fourth would pass the share large bodies may fill: refused at once, not left to wait.
    fourth = await open_partial(b"x" * HELD, 1024)
    assert await fourth.status() == 503
    assert _budget(client).used == 3 * HELD
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_callbacks_total{kind="unknown",result="overloaded"} 1.0' in metrics

    # Bodies that end release their share.
    for partial in held:
        partial.writer.close()
    await eventually(lambda: _budget(client).used == 0, within=10, what="the budget released")


async def test_a_css_sized_body_still_gets_through_a_flood_of_large_ones(
    client: Any, open_partial: Callable[..., Any]
) -> None:
    for _ in range(3):
        await open_partial(b"x" * HELD, 1024)
    await eventually(lambda: _budget(client).used == 3 * HELD, within=10, what="3 bodies counted")
    assert (await (await open_partial(b"x" * HELD, 1024)).status()) == 503

    body = json.dumps(signed(payload("image_moderation_317.json"))).encode()
    callback = await open_partial(body, 100)  # arrives in two parts, like a split TCP segment
    await eventually(
        lambda: _budget(client).used == 3 * HELD + len(body), within=10, what="counted too"
    )
    callback.writer.write(body[100:])
    assert await callback.status() == 200


def test_a_body_larger_than_the_large_share_is_admitted_alone() -> None:
    """Any body within RECEIVER_MAX_BODY_BYTES can be received while nothing else is."""
    budget = BodyBudget(100 * 1024)
    with budget.reserve(90 * 1024):
        assert budget.used == 90 * 1024
    with budget.reserve(20 * 1024), pytest.raises(Overloaded), budget.reserve(70 * 1024):
        pass
