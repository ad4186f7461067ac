"""Sustained end to end: the highest paced rate at which the fold and the outbox keep up, held.

A burst measures how fast callbacks are acknowledged. The fold and the relay work off the
acknowledgement's path, so acknowledging faster than they work only grows their backlogs: the
rate that counts for a service running all day is the highest one at which both stay bounded.

Finding it: start from the burst rate measured with the relay publishing and run short paced
probes at decreasing rates (each `STEP` times the last) until one keeps both backlogs bounded
(see `readiness.Bound`: at the end at most one second of offered traffic, and not growing over
the last half) and wrk achieves at least `ACHIEVED` of the offered rate (a server that cannot
even acknowledge that fast holds its backlogs down by answering slower). Then `refine` bisection
steps between the highest bounded and the lowest unbounded rate. Then the long run at the rate
found, with a real consumer: every event acknowledged, stored, confirmed and consumed.

Each probe and the long run start a fresh service on a fresh database and end with a quiet
second (so the counts are exact) and a wait until every event is folded, published and
consumed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ingest import describe, one_run
from bench.keepup import KeepUp
from bench.service import RELAY
from bench.wrk import PACED_QUIET, Load

STEP = 0.85
ACHIEVED = 0.95  # of the offered rate
PROBE_SAMPLE_EVERY = 0.25
RUN_SAMPLE_EVERY = 0.5


def bounded(probe: KeepUp) -> bool:
    return probe.fold.ok and probe.outbox.ok and probe.achieved >= ACHIEVED


@dataclass
class Sustained:
    start: float  # the burst rate with the relay that the search started from
    probes: list[KeepUp] = field(default_factory=list)
    found: bool = False  # whether a probe stayed bounded
    run: KeepUp | None = None  # the long run at the rate found

    @property
    def rate(self) -> float:
        """The highest bounded rate probed (if none was: the lowest probed)."""
        good = [p.offered for p in self.probes if bounded(p)]
        return max(good) if good else min(p.offered for p in self.probes)

    def summary(self) -> dict[str, Any]:
        return {
            "burst_rate_with_relay": round(self.start, 1),
            "rate_found": round(self.rate, 1),
            "found": self.found,
            "probes": [
                {
                    "offered": round(p.offered, 1),
                    "achieved": round(p.run.wrk.rate, 1),
                    "bounded": bounded(p),
                    "fold_backlog": p.fold.summary(),
                    "outbox_backlog": p.outbox.summary(),
                }
                for p in self.probes
            ],
            "run": None if self.run is None else self.run.summary(),
        }


async def paced_run(
    url: str, rate: float, load: Load, *, sample_every: float, scratch: Path, tag: str = ""
) -> KeepUp:
    """One paced run with the relay, on a database of its own (`tag` names it among the runs
    sharing `scratch`: a probe must not count the events of the one before)."""
    paced = Load(load.seconds, load.connections, load.threads, rate=rate, quiet=PACED_QUIET)
    run = await one_run(RELAY, scratch, paced, url, sample_every=sample_every, tag=tag)
    return KeepUp(rate, run)


async def search(
    start: float,
    holds: Callable[[float], Awaitable[bool]],
    *,
    max_probes: int,
    refine: int,
) -> float | None:
    """The highest rate found at which `holds`, probing down from `start` by `STEP` (at most
    `max_probes` times), then `refine` bisection steps between the highest rate that held and
    the lowest that did not. None if no probe held."""
    high: float | None = None  # the lowest rate seen not holding
    rate = start
    for _ in range(max_probes):
        if await holds(rate):
            break
        high, rate = rate, rate * STEP
    else:
        return None
    low = rate
    if high is not None:
        for _ in range(refine):
            middle = (low + high) / 2
            if await holds(middle):
                low = middle
            else:
                high = middle
    return low


async def find_rate(
    url: str,
    *,
    start: float,
    probe: Load,
    max_probes: int,
    refine: int,
    log: Callable[[str], object] = print,
) -> Sustained:
    """The probes of `search`, each a paced run of `probe` with the relay publishing."""
    result = Sustained(start)
    with tempfile.TemporaryDirectory(prefix="bench-sustained-") as scratch:

        async def holds(rate: float) -> bool:
            p = await paced_run(
                url,
                rate,
                probe,
                sample_every=PROBE_SAMPLE_EVERY,
                scratch=Path(scratch),
                tag=f"probe{len(result.probes) + 1}-",
            )
            result.probes.append(p)
            ok = bounded(p)
            log(
                f"  probe {len(result.probes)} at {rate:8,.0f} req/s: achieved "
                f"{p.run.wrk.rate:8,.0f}, fold backlog end {p.fold.end} growth "
                f"{p.fold.growth:+.0f}, outbox backlog end {p.outbox.end} growth "
                f"{p.outbox.growth:+.0f}: {'bounded' if ok else 'NOT bounded'}"
            )
            return ok

        found = await search(start, holds, max_probes=max_probes, refine=refine)
    result.found = found is not None
    return result


async def measure_sustained(
    url: str,
    *,
    start: float,
    probe: Load,
    load: Load,
    max_probes: int,
    refine: int,
    log: Callable[[str], object] = print,
) -> Sustained:
    """Find the rate, then hold it for `load.seconds` with the relay publishing."""
    result = await find_rate(
        url, start=start, probe=probe, max_probes=max_probes, refine=refine, log=log
    )
    rate = result.rate
    log(f"  {load.seconds:g} s at {rate:,.0f} req/s")
    with tempfile.TemporaryDirectory(prefix="bench-sustained-") as scratch:
        result.run = await paced_run(
            url, rate, load, sample_every=RUN_SAMPLE_EVERY, scratch=Path(scratch)
        )
    log(describe(f"at {rate:,.0f} req/s", result.run.run))
    return result
