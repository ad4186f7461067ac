"""One server under test for one measurement: bare aiohttp or `receiver serve`, with or without
the relay publishing, its database, its consumer; and the counts that prove nothing was lost.

Every receiver gets a fresh database and a fresh key. With publishing on, a consumer's queue is
bound to a fresh exchange before the service starts, so no event is returned as unroutable.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.consumer import Consumer
from bench.procs import Server, python_module
from bench.readiness import folded, published, wait_until
from bench.wrk import WrkResult
from testbed.service import free_port

BASELINE, RECEIVER, RELAY = "bare aiohttp", "receiver", "receiver + relay"
END_TO_END_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Service:
    side: str
    server: Server
    key: str
    database: Path | None  # None: the baseline stores nothing
    consumer: Consumer | None  # with the relay publishing

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.asynccontextmanager
async def serving(
    side: str, scratch: Path, amqp_url: str | None, *, tag: str = "", keep_ids: bool = True
) -> AsyncIterator[Service]:
    """Start `side`, wait until healthy, yield it; stop it (SIGTERM) and the consumer after."""
    key = secrets.token_hex(8)
    port = free_port()
    name = f"{tag}{side.replace(' ', '').replace('+', '-')}"
    database: Path | None = None
    consumer: Consumer | None = None
    if side == BASELINE:
        argv = python_module("bench.baseline", "--port", str(port))
        env: dict[str, str] = {}
    else:
        database = scratch / f"{name}.db"
        argv = python_module("receiver", "serve")
        env = receiver_env(key, database, port)
        if side == RELAY:
            if amqp_url is None:
                raise ValueError("the relay needs a broker")
            env["RECEIVER_AMQP_URL"] = amqp_url
            env["RECEIVER_AMQP_EXCHANGE"] = f"bench.{uuid.uuid4().hex[:12]}"
            consumer = await Consumer(
                amqp_url, env["RECEIVER_AMQP_EXCHANGE"], keep_ids=keep_ids
            ).open()
    server = Server(argv, port, env, log=scratch / f"{name}.log")
    try:
        await asyncio.to_thread(server.wait_healthy)
        yield Service(side, server, key, database, consumer)
    finally:
        # SIGTERM: requests cut off by the end of the run finish, the writer commits the rest.
        await asyncio.to_thread(server.stop)
        if consumer is not None:
            await consumer.close()


def receiver_env(key: str, database: Path, port: int) -> dict[str, str]:
    """`receiver serve` with its defaults (uvloop included), on loopback, quiet logs."""
    return {
        "RECEIVER_CALLBACK_KEYS": key,
        "RECEIVER_DATABASE": str(database),
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_PORT": str(port),
        "RECEIVER_LOG_LEVEL": "WARNING",
    }


def check_stored(stored: int, results: list[WrkResult], connections: int) -> None:
    """Raise unless every request answered 200 is stored, and nothing else but requests cut off
    when wrk stopped (stored, their answer never read: at most one per connection and run).

    Counted after the fold drained: before that, acknowledged events may still be in the inbox.
    """
    refused = sum(r.non2xx for r in results)
    requests = sum(r.requests for r in results)
    ok = sum(r.ok for r in results)
    if refused:
        raise AssertionError(f"the receiver refused {refused} of {requests} requests")
    if stored < ok:
        raise AssertionError(f"lost events: {ok} answered 200 but {stored} stored")
    extra = connections * len(results) + sum(r.errors for r in results)
    if stored > ok + extra:
        raise AssertionError(f"{stored} events stored for {ok} requests answered 200")


def count(database: Path, query: str) -> int:
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(query).fetchone()[0])
    finally:
        conn.close()


def stored(database: Path) -> int:
    return count(database, "SELECT count(*) FROM events")


def ids(database: Path) -> set[str]:
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM events")}
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class EndToEnd:
    """From the first request until every stored event was confirmed and consumed."""

    seconds: float  # until the last new message arrived
    after_load_seconds: float  # of which after the last request was sent
    consumed: int  # distinct message ids (with `keep_ids` off: deliveries)
    deliveries: int  # duplicates included (at-least-once)


@dataclass(frozen=True, slots=True)
class Settled:
    """What a receiver did with a load once it ended."""

    fold_drain: float  # seconds from the end of sending until the fold backlog was 0
    stored: int  # events, counted once the fold drained
    end_to_end: EndToEnd | None  # with the relay publishing


async def settle(
    service: Service,
    *,
    started: float,
    sending_end: float,
    folded_at: asyncio.Task[float] | None = None,
) -> Settled:
    """Wait until the fold backlog is 0 and count the events; with the relay, also until every
    event was consumed and the outbox backlog is 0 (the messages consumed must be the events
    stored). `started` and `sending_end` are `perf_counter` times; `folded_at`, a watch already
    started with `readiness.wait_until` (to catch a fold that drains during a quiet tail)."""
    if service.database is None:
        raise ValueError("the baseline stores nothing")
    drained = await (
        folded_at
        if folded_at is not None
        else wait_until(
            service.url, folded, what="folded", since=sending_end, within=END_TO_END_TIMEOUT
        )
    )
    events = stored(service.database)
    end_to_end = None
    consumer = service.consumer
    if consumer is not None:
        if not await consumer.wait_for(events, within=END_TO_END_TIMEOUT):
            raise AssertionError(
                f"after {END_TO_END_TIMEOUT:.0f} s, {consumer.distinct} of {events} events consumed"
            )
        await wait_until(
            service.url, published, what="published", since=0.0, within=END_TO_END_TIMEOUT
        )
        if stored(service.database) != events:
            raise AssertionError("events were still being stored after the fold backlog was 0")
        if consumer.keep_ids and consumer.ids != ids(service.database):
            raise AssertionError("the messages consumed are not the events stored")
        done = consumer.last_new
        end_to_end = EndToEnd(
            done - started, max(0.0, done - sending_end), consumer.distinct, consumer.messages
        )
    return Settled(max(0.0, drained - sending_end), events, end_to_end)
