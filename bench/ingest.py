"""Ingest: bare aiohttp vs `receiver serve` (publishing off) vs `receiver serve` with the relay
publishing to RabbitMQ, under the same wrk load, alternating within each round.

Alternating (baseline, receiver, receiver + relay, baseline, ...) makes drift on a shared
machine hit every side alike, and each ratio is taken within a round. Every receiver run gets a
fresh database and its counts are checked: no request refused, rows stored >= 200s received (a
200 without a row would be a lost event; rows without a 200 are requests cut off by the end of
the run, at most one per connection). With the relay, the run also waits until every stored
event was confirmed by the broker and consumed from a bound queue: the end-to-end figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.bodies import templates
from bench.consumer import Consumer
from bench.procs import Server, python_module
from bench.wrk import WrkResult, lua_script, run_wrk
from testbed.service import free_port

BASELINE, RECEIVER, RELAY = "bare aiohttp", "receiver", "receiver + relay"
END_TO_END_TIMEOUT = 300.0
SETTLE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Load:
    """How hard wrk drives the server."""

    seconds: float
    connections: int
    threads: int
    rate: float | None = None  # requests/s in total; None: as fast as answered
    streams: int = 0  # spread events over this many streams; 0: one per kind (the examples')


@dataclass(frozen=True, slots=True)
class EndToEnd:
    """From the first request until every stored event was confirmed and consumed."""

    seconds: float
    after_load_seconds: float  # of which after the last request
    consumed: int  # distinct message ids
    deliveries: int  # duplicates included (at-least-once)


@dataclass(frozen=True, slots=True)
class Sample:
    """The outbox as `/readyz` reports it, `at` seconds after the load started."""

    at: float
    backlog: int
    oldest_age: float | None


@dataclass(frozen=True, slots=True)
class Run:
    side: str
    wrk: WrkResult
    http_cpu_ms: float  # per request, HTTP process (with the relay: its publishing too)
    writer_cpu_ms: float | None  # per request, writer process (receiver only)
    stored: int | None
    end_to_end: EndToEnd | None = None
    samples: tuple[Sample, ...] = ()  # while the load ran, and one right after it
    streams: int | None = None  # distinct streams among the stored events


@dataclass
class Side:
    """The runs of one server configuration; figures are medians."""

    name: str
    runs: list[Run] = field(default_factory=list)

    def median(self, value: Callable[[Run], float | None]) -> float:
        values = [v for v in map(value, self.runs) if v is not None]
        return float(statistics.median(values)) if values else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "req_per_s": round(self.median(lambda r: r.wrk.rate), 1),
            "p50_ms": round(self.median(lambda r: r.wrk.p50_ms), 2),
            "p99_ms": round(self.median(lambda r: r.wrk.p99_ms), 2),
            "http_cpu_ms_per_req": round(self.median(lambda r: r.http_cpu_ms), 4),
            "wrk_cpu_ms_per_req": round(
                self.median(lambda r: 1000 * r.wrk.cpu_seconds / max(r.wrk.requests, 1)), 4
            ),
            "runs": len(self.runs),
            "requests": [r.wrk.requests for r in self.runs],
            "ok": [r.wrk.ok for r in self.runs],
        }
        if any(r.writer_cpu_ms is not None for r in self.runs):
            out["writer_cpu_ms_per_req"] = round(self.median(lambda r: r.writer_cpu_ms), 4)
            out["stored"] = [r.stored for r in self.runs]
            out["streams_stored"] = [r.streams for r in self.runs]
        if any(r.end_to_end is not None for r in self.runs):
            e2e = [r.end_to_end for r in self.runs if r.end_to_end is not None]
            out["end_to_end_s"] = round(statistics.median(e.seconds for e in e2e), 3)
            out["after_load_s"] = round(statistics.median(e.after_load_seconds for e in e2e), 3)
            out["end_to_end_events_per_s"] = round(
                statistics.median(
                    r.end_to_end.consumed / r.end_to_end.seconds
                    for r in self.runs
                    if r.end_to_end is not None
                ),
                1,
            )
            out["consumed"] = [e.consumed for e in e2e]
            out["deliveries"] = [e.deliveries for e in e2e]
        return out


def ratio(side: Side, baseline: Side) -> float:
    """The median of the per-round ratios of req/s (each round measures both back to back)."""
    pairs = zip(side.runs, baseline.runs, strict=True)
    return float(statistics.median(s.wrk.rate / b.wrk.rate for s, b in pairs))


async def measure_ingest(
    *,
    runs: int,
    load: Load,
    amqp_url: str | None,
    log: Callable[[str], object] = print,
) -> dict[str, Side]:
    """`runs` rounds of baseline, receiver and (with `amqp_url`) receiver + relay."""
    names = [BASELINE, RECEIVER] + ([RELAY] if amqp_url else [])
    sides = {name: Side(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        for n in range(runs):
            for name in names:
                run = await one_run(name, Path(scratch), load, amqp_url, tag=str(n))
                sides[name].runs.append(run)
                log(describe(f"run {n + 1}/{runs}", run))
    return sides


def describe(prefix: str, run: Run) -> str:
    cpu = f"cpu/req http {run.http_cpu_ms:.3f} ms"
    if run.writer_cpu_ms is not None:
        cpu += f" writer {run.writer_cpu_ms:.3f} ms"
    line = (
        f"  {prefix} {run.side:<17} {run.wrk.rate:8.0f} req/s  p50 {run.wrk.p50_ms:6.2f} ms  "
        f"p99 {run.wrk.p99_ms:6.2f} ms  {cpu}"
    )
    if run.end_to_end is not None:
        line += f"  end to end {run.end_to_end.seconds:.2f} s"
    return line


async def one_run(
    side: str,
    scratch: Path,
    load: Load,
    amqp_url: str | None,
    *,
    tag: str = "",
    sample_every: float | None = None,
) -> Run:
    """One server, one wrk run, the counts checked; with `sample_every`, `/readyz` is read
    that often during the load (the outbox backlog and the age of its oldest event)."""
    key = secrets.token_hex(8)
    port = free_port()
    name = f"{tag}{side.replace(' ', '')}"
    database = scratch / f"{name}.db"
    consumer: Consumer | None = None
    if side == BASELINE:
        argv = python_module("bench.baseline", "--port", str(port))
        env: dict[str, str] = {}
    else:
        argv = python_module("receiver", "serve")
        env = receiver_env(key, database, port)
        if side == RELAY:
            assert amqp_url is not None
            env["RECEIVER_AMQP_URL"] = amqp_url
            env["RECEIVER_AMQP_EXCHANGE"] = f"bench.{uuid.uuid4().hex[:12]}"
            # Bound before the service starts: no event is returned as unroutable.
            consumer = await Consumer(amqp_url, env["RECEIVER_AMQP_EXCHANGE"]).open()
    server = Server(argv, port, env, log=scratch / f"{name}.log")
    try:
        await asyncio.to_thread(server.wait_healthy)
        script = lua_script(
            templates(key, spread_streams=load.streams > 0),
            nonce=uuid.uuid4().hex[:8],
            rate=load.rate,
            threads=load.threads,
            streams=load.streams,
        )
        before = server.usage()
        started = time.perf_counter()
        samples: list[Sample] = []
        sampler = None
        if sample_every is not None:
            sampler = asyncio.create_task(sample(server.url, sample_every, started, samples))
        try:
            result = await run_wrk(
                f"{server.url}/callbacks",
                script,
                seconds=load.seconds,
                connections=load.connections,
                threads=load.threads,
            )
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        finished = time.perf_counter()
        after = server.usage()
        if sample_every is not None:
            samples.append(await readiness(server.url, started))
        end_to_end = None
        if consumer is not None:
            end_to_end = await wait_end_to_end(consumer, database, started, finished)
    finally:
        # SIGTERM: requests cut off by the end of the run finish, the writer commits the rest.
        await asyncio.to_thread(server.stop)
        if consumer is not None:
            await consumer.close()
    cpu = [1000 * (a.cpu_seconds - b.cpu_seconds) / max(result.requests, 1)
           for b, a in zip(before, after, strict=True)]  # fmt: skip
    if side == BASELINE:
        return Run(side, result, cpu[0], None, None)
    stored = check_stored(database, result, load.connections)
    if end_to_end is not None and end_to_end.consumed != stored:
        raise AssertionError(f"{stored} events stored but {end_to_end.consumed} consumed")
    writer_cpu = cpu[1] if len(cpu) > 1 else None
    streams = count(database, "SELECT count(DISTINCT stream_id) FROM events")
    return Run(
        side, result, cpu[0], writer_cpu, stored, end_to_end, tuple(samples), streams=streams
    )


async def sample(url: str, every: float, started: float, into: list[Sample]) -> None:
    """Read `/readyz` every `every` seconds until cancelled."""
    async with aiohttp.ClientSession() as session:
        while True:
            into.append(await readiness(url, started, session))
            await asyncio.sleep(every)


async def readiness(
    url: str, started: float, session: aiohttp.ClientSession | None = None
) -> Sample:
    """The outbox backlog and the age of its oldest event, as the service reports them."""
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        async with session.get(f"{url}/readyz") as response:
            broker = (await response.json())["broker"]
    return Sample(
        round(time.perf_counter() - started, 3),
        int(broker["backlog"] or 0),
        broker["oldest_unpublished_age_seconds"],
    )


def receiver_env(key: str, database: Path, port: int) -> dict[str, str]:
    """`receiver serve` with its defaults (uvloop included), on loopback, quiet logs."""
    return {
        "RECEIVER_CALLBACK_KEYS": key,
        "RECEIVER_DATABASE": str(database),
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_PORT": str(port),
        "RECEIVER_LOG_LEVEL": "WARNING",
    }


def check_stored(database: Path, result: WrkResult, connections: int) -> int:
    """The stored row count, after checking it against what wrk saw (raises on a mismatch)."""
    if result.non2xx:
        raise AssertionError(f"the receiver refused {result.non2xx} of {result.requests} requests")
    stored = count(database, "SELECT count(*) FROM events")
    if stored < result.ok:
        raise AssertionError(f"lost events: {result.ok} answered 200 but {stored} rows stored")
    if stored > result.requests + connections:
        raise AssertionError(f"{stored} rows for {result.requests} requests")
    return stored


async def wait_end_to_end(
    consumer: Consumer, database: Path, started: float, finished: float
) -> EndToEnd:
    """Wait until every stored event is marked published (confirmed) and was consumed.

    Polls the database (read-only) under a deadline. Requests cut off by the end of the load
    are still being stored for a few milliseconds after it, so the condition must hold for
    `SETTLE_SECONDS` in a row; the end-to-end time is when the last new message arrived.
    """
    deadline = time.monotonic() + END_TO_END_TIMEOUT
    held_since: float | None = None
    while True:
        now = time.monotonic()
        stored = count(database, "SELECT count(*) FROM events")
        left = count(database, "SELECT count(*) FROM events WHERE published_at IS NULL")
        if left == 0 and consumer.distinct >= stored:
            held_since = held_since or now
            if now - held_since >= SETTLE_SECONDS:
                break
        else:
            held_since = None
        if now > deadline:
            raise AssertionError(
                f"after {END_TO_END_TIMEOUT:.0f} s: {left} of {stored} events unconfirmed, "
                f"{consumer.distinct} consumed"
            )
        await asyncio.sleep(0.02)
    if consumer.keep_ids and consumer.ids != ids(database):
        raise AssertionError("the messages consumed are not the events stored")
    done = consumer.last_new
    return EndToEnd(done - started, max(0.0, done - finished), consumer.distinct, consumer.messages)


def count(database: Path, query: str) -> int:
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(query).fetchone()[0])
    finally:
        conn.close()


def ids(database: Path) -> set[str]:
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM events")}
    finally:
        conn.close()
