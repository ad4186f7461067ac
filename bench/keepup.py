"""Keep-up: ingest at half the durable maximum with the relay publishing; the outbox keeps up.

The rate comes from the same run's ingest figures (receiver, publishing off), and wrk paces
the requests to it. `/readyz` is read twice a second: the outbox backlog must stay bounded (at
most one second of traffic) and the oldest unpublished event must be under a second old when the
load ends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ingest import RELAY, Load, Run, describe, one_run

SAMPLE_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class KeepUp:
    offered: float  # req/s asked of wrk
    run: Run

    @property
    def max_backlog(self) -> int:
        return max((s.backlog for s in self.run.samples), default=0)

    @property
    def final_age(self) -> float:
        """Age of the oldest unpublished event over the last second of the load (0: none).

        The last second, not the last reading alone: `/readyz` counts the backlog and then looks
        up its oldest event, and the relay may empty it in between (a count with no age).
        """
        if not self.run.samples:
            return 0.0
        end = self.run.samples[-1].at
        return max(s.oldest_age or 0.0 for s in self.run.samples if s.at >= end - 1.0)

    @property
    def max_age(self) -> float:
        return max((s.oldest_age or 0.0 for s in self.run.samples), default=0.0)

    @property
    def bounded(self) -> bool:
        return self.max_backlog <= max(self.offered, 1.0)

    def summary(self) -> dict[str, Any]:
        run = self.run
        return {
            "offered_req_per_s": round(self.offered, 1),
            "achieved_req_per_s": round(run.wrk.rate, 1),
            "p50_ms": round(run.wrk.p50_ms, 2),
            "p99_ms": round(run.wrk.p99_ms, 2),
            "http_cpu_ms_per_req": round(run.http_cpu_ms, 4),
            "writer_cpu_ms_per_req": round(run.writer_cpu_ms or 0.0, 4),
            "stored": run.stored,
            "max_backlog": self.max_backlog,
            "final_backlog": run.samples[-1].backlog if run.samples else None,
            "final_oldest_unpublished_s": round(self.final_age, 3),
            "max_oldest_unpublished_s": round(self.max_age, 3),
            "samples": [[s.at, s.backlog, s.oldest_age] for s in run.samples],
        }


async def measure_keepup(
    url: str, *, rate: float, load: Load, log: Callable[[str], object] = print
) -> KeepUp:
    paced = Load(load.seconds, load.connections, load.threads, rate=rate)
    with tempfile.TemporaryDirectory(prefix="bench-keepup-") as scratch:
        run = await one_run(RELAY, Path(scratch), paced, url, sample_every=SAMPLE_EVERY)
    result = KeepUp(rate, run)
    log(describe(f"at {rate:,.0f} req/s", run))
    log(
        f"  outbox backlog at most {result.max_backlog} events; oldest unpublished at most "
        f"{result.max_age:.3f} s, {result.final_age:.3f} s at the end"
    )
    return result
