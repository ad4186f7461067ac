"""Soak: `receiver serve` with the relay publishing, at a steady rate for many minutes; its
memory must stay flat.

The resident memory of every process of the service (HTTP, writer and fold, relay: by role, see
`bench.procs`) is read every few seconds. The reference is the reading at the end of the warm-up
(a minute, or a fifth of a shorter run: caches, pools and the first database pages fill up then);
the figure is the largest reading after it divided by the reference (target <= 1.20). The load
runs in segments of at most five minutes, each with freshly signed bodies (a CSS signature is
valid for 600 s plus the grace period) and a quiet tail, so the counts at the end are exact:
every request answered 200 is stored (once the fold drained) and consumed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import Server, rss_by_role
from bench.readiness import cancel_all, finish
from bench.service import RELAY, Settled, check_stored, serving, settle
from bench.wrk import PACED_QUIET, Load, WrkResult, drive

SEGMENT_SECONDS = 300.0
WARM_UP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # seconds since the load started
    rss: dict[str, int]  # bytes, by process role


@dataclass
class Soak:
    rate: float
    seconds: float
    readings: list[Reading] = field(default_factory=list)
    segments: list[WrkResult] = field(default_factory=list)
    settled: Settled | None = None

    @property
    def warm_up(self) -> float:
        return min(WARM_UP_SECONDS, self.seconds / 5)

    @property
    def roles(self) -> list[str]:
        return sorted({role for r in self.readings for role in r.rss})

    def growth(self, role: str) -> tuple[int, int, int, float]:
        """(reference, largest after it, last, largest / reference) of one role's RSS."""
        seen = [r for r in self.readings if role in r.rss]
        after = [r for r in seen if r.at >= self.warm_up] or seen
        reference = after[0].rss[role]
        largest = max(r.rss[role] for r in after)
        return reference, largest, after[-1].rss[role], largest / max(reference, 1)

    def summary(self) -> dict[str, Any]:
        e2e = self.settled.end_to_end if self.settled else None
        out: dict[str, Any] = {
            "minutes": round(self.seconds / 60, 2),
            "offered_req_per_s": round(self.rate, 1),
            "achieved_req_per_s": round(
                sum(s.ok for s in self.segments) / max(sum(s.seconds for s in self.segments), 1e-9),
                1,
            ),
            "p99_ms": round(max(s.p99_ms for s in self.segments), 2),
            "ok": sum(s.ok for s in self.segments),
            "stored": None if self.settled is None else self.settled.stored,
            "consumed": None if e2e is None else e2e.consumed,
            "fold_drain_s": None if self.settled is None else round(self.settled.fold_drain, 3),
            "warm_up_s": self.warm_up,
            "rss_mib": {},
        }
        for role in self.roles:
            reference, largest, last, growth = self.growth(role)
            out["rss_mib"][role] = {
                "reference": _mib(reference),
                "max": _mib(largest),
                "end": _mib(last),
                "growth": round(growth, 3),
            }
        out["readings"] = [[r.at, {k: _mib(v) for k, v in r.rss.items()}] for r in self.readings]
        return out


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
        # Counting only: a set of ids would grow by millions in this process.
        async with serving(RELAY, Path(scratch), url, keep_ids=False) as service:
            started = time.perf_counter()
            reader = asyncio.create_task(
                _read_memory(service.server, every, started, result.readings)
            )
            try:
                while (left := seconds - (time.perf_counter() - started)) >= 2:
                    segment = Load(
                        min(SEGMENT_SECONDS, left), load.connections, load.threads,
                        rate=rate, quiet=PACED_QUIET,
                    )  # fmt: skip
                    done = await drive(service.url, service.key, segment)
                    if done.non2xx:
                        raise AssertionError(f"the receiver refused {done.non2xx} requests")
                    result.segments.append(done)
                    last = result.readings[-1] if result.readings else None
                    log(
                        f"  {time.perf_counter() - started:6.0f} s: {done.rate:7.0f} req/s, "
                        f"p99 {done.p99_ms:.1f} ms"
                        + (
                            ", RSS "
                            + ", ".join(f"{k} {_mib(v)} MiB" for k, v in sorted(last.rss.items()))
                            if last
                            else ""
                        )
                    )
                await finish(reader)
            finally:
                await cancel_all([reader])
            result.seconds = time.perf_counter() - started
            ended = time.perf_counter()
            result.settled = await settle(service, started=started, sending_end=ended)
        check_stored(result.settled.stored, result.segments, load.connections)
    return result


async def _read_memory(server: Server, every: float, started: float, into: list[Reading]) -> None:
    while True:
        rss = rss_by_role(server.snapshot())
        into.append(Reading(round(time.perf_counter() - started, 1), rss))
        await asyncio.sleep(every)
