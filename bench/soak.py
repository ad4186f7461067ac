"""Soak: `receiver serve` with the relay publishing, at a steady rate for many minutes; its
memory must stay flat.

The resident memory of both processes (HTTP + relay, and the writer) is read every few seconds.
The reference is the reading at the end of the warm-up (a minute, or a fifth of a shorter run:
caches, pools and the first database pages fill up then); the figure is the largest reading after
it divided by the reference (target <= 1.20). The load runs in segments of at most five minutes,
each with freshly signed bodies (a CSS signature is valid for 600 s plus the grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bodies import templates
from bench.consumer import Consumer
from bench.ingest import END_TO_END_TIMEOUT, Load, count, receiver_env
from bench.procs import Server, python_module
from bench.wrk import WrkResult, lua_script, run_wrk
from testbed.service import free_port

SEGMENT_SECONDS = 300.0
WARM_UP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # seconds since the load started
    http_rss: int
    writer_rss: int


@dataclass
class Soak:
    rate: float
    seconds: float
    readings: list[Reading] = field(default_factory=list)
    segments: list[WrkResult] = field(default_factory=list)
    stored: int = 0
    consumed: int = 0

    @property
    def warm_up(self) -> float:
        return min(WARM_UP_SECONDS, self.seconds / 5)

    def growth(self, rss: Callable[[Reading], int]) -> tuple[int, int, int, float]:
        """(reference, largest after it, last, largest / reference)."""
        after = [r for r in self.readings if r.at >= self.warm_up] or self.readings
        reference = rss(after[0])
        largest = max(rss(r) for r in after)
        return reference, largest, rss(after[-1]), largest / max(reference, 1)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "minutes": round(self.seconds / 60, 2),
            "offered_req_per_s": round(self.rate, 1),
            "achieved_req_per_s": round(sum(s.ok for s in self.segments) / self.seconds, 1),
            "p99_ms": round(max(s.p99_ms for s in self.segments), 2),
            "stored": self.stored,
            "consumed": self.consumed,
            "warm_up_s": self.warm_up,
        }
        for name, rss in (("http", _http), ("writer", _writer)):
            reference, largest, last, growth = self.growth(rss)
            out[f"{name}_rss_mib"] = {
                "reference": _mib(reference),
                "max": _mib(largest),
                "end": _mib(last),
                "growth": round(growth, 3),
            }
        out["readings"] = [[r.at, _mib(r.http_rss), _mib(r.writer_rss)] for r in self.readings]
        return out


def _http(reading: Reading) -> int:
    return reading.http_rss


def _writer(reading: Reading) -> int:
    return reading.writer_rss


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


async def measure_soak(
    url: str,
    *,
    minutes: float,
    rate: float,
    load: Load,
    every: float = 5.0,
    log: Callable[[str], object] = print,
) -> Soak:
    seconds = minutes * 60
    result = Soak(rate, seconds)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as scratch:
        key = secrets.token_hex(8)
        port = free_port()
        database = Path(scratch) / "soak.db"
        env = receiver_env(key, database, port)
        env["RECEIVER_AMQP_URL"] = url
        env["RECEIVER_AMQP_EXCHANGE"] = f"bench.{uuid.uuid4().hex[:12]}"
        # Counting only: a set of ids would grow by millions in this process.
        consumer = await Consumer(url, env["RECEIVER_AMQP_EXCHANGE"], keep_ids=False).open()
        server = Server(python_module("receiver", "serve"), port, env, log=Path(scratch) / "log")
        try:
            await asyncio.to_thread(server.wait_healthy)
            started = time.perf_counter()
            reader = asyncio.create_task(_read_memory(server, every, started, result.readings))
            try:
                while (left := seconds - (time.perf_counter() - started)) >= 1:
                    segment = await run_wrk(
                        f"{server.url}/callbacks",
                        lua_script(
                            templates(key),
                            nonce=uuid.uuid4().hex[:8],
                            rate=rate,
                            threads=load.threads,
                        ),
                        seconds=min(SEGMENT_SECONDS, left),
                        connections=load.connections,
                        threads=load.threads,
                    )
                    if segment.non2xx:
                        raise AssertionError(f"the receiver refused {segment.non2xx} requests")
                    result.segments.append(segment)
                    last = result.readings[-1] if result.readings else None
                    log(
                        f"  {time.perf_counter() - started:6.0f} s: {segment.rate:7.0f} req/s, "
                        f"p99 {segment.p99_ms:.1f} ms"
                        + (
                            f", RSS http {_mib(last.http_rss)} MiB writer "
                            f"{_mib(last.writer_rss)} MiB"
                            if last
                            else ""
                        )
                    )
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            result.seconds = time.perf_counter() - started
            stored = count(database, "SELECT count(*) FROM events")
            if not await consumer.wait_for(stored, within=END_TO_END_TIMEOUT):
                raise AssertionError(f"{consumer.distinct} of {stored} events consumed")
        finally:
            await asyncio.to_thread(server.stop)
            await consumer.close()
        result.stored = count(database, "SELECT count(*) FROM events")
        result.consumed = consumer.messages
        ok = sum(s.ok for s in result.segments)
        if result.stored < ok:
            raise AssertionError(f"lost events: {ok} answered 200 but {result.stored} stored")
    return result


async def _read_memory(server: Server, every: float, started: float, into: list[Reading]) -> None:
    while True:
        usage = server.usage()
        into.append(
            Reading(
                round(time.perf_counter() - started, 1),
                usage[0].rss_bytes,
                usage[1].rss_bytes if len(usage) > 1 else 0,
            )
        )
        await asyncio.sleep(every)
