"""Keep-up: ingest at half the sustained maximum with the relay publishing; both the fold and the
outbox keep up.

The rate comes from the same run's sustained figure, and wrk paces the requests to it. `/readyz`
is read twice a second: both backlogs must stay bounded (at most one second of traffic, not
growing), and the oldest unfolded and the oldest unpublished rows must be under a second old when
the load ends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ingest import Run, describe, one_run
from bench.readiness import Bound, age_at_end, bound
from bench.service import RELAY
from bench.wrk import PACED_QUIET, Load

SAMPLE_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class KeepUp:
    offered: float  # req/s asked of wrk
    run: Run

    @property
    def fold(self) -> Bound:
        return bound(
            self.run.samples, lambda s: s.fold_backlog, sending=self.run.sending, rate=self.offered
        )

    @property
    def outbox(self) -> Bound:
        return bound(
            self.run.samples,
            lambda s: s.outbox_backlog,
            sending=self.run.sending,
            rate=self.offered,
        )

    @property
    def oldest_unfolded(self) -> float:
        """At the end of the load (its last second of sending)."""
        return age_at_end(self.run.samples, lambda s: s.oldest_unfolded, sending=self.run.sending)

    @property
    def oldest_unpublished(self) -> float:
        return age_at_end(
            self.run.samples, lambda s: s.oldest_unpublished, sending=self.run.sending
        )

    @property
    def achieved(self) -> float:
        return self.run.wrk.rate / self.offered

    def summary(self) -> dict[str, Any]:
        run = self.run
        e2e = run.end_to_end
        return {
            "offered_req_per_s": round(self.offered, 1),
            "achieved_req_per_s": round(run.wrk.rate, 1),
            "p50_ms": round(run.wrk.p50_ms, 2),
            "p99_ms": round(run.wrk.p99_ms, 2),
            "cpu_ms_per_req": {k: round(v, 4) for k, v in run.cpu_ms.items()},
            "ok": run.wrk.ok,
            "stored": run.stored,
            "consumed": None if e2e is None else e2e.consumed,
            "fold_drain_s": None if run.fold_drain is None else round(run.fold_drain, 3),
            "fold_backlog": self.fold.summary(),
            "outbox_backlog": self.outbox.summary(),
            "oldest_unfolded_at_end_s": round(self.oldest_unfolded, 3),
            "oldest_unpublished_at_end_s": round(self.oldest_unpublished, 3),
            "samples": [s.row() for s in run.samples],
        }


async def measure_keepup(
    url: str, *, rate: float, load: Load, log: Callable[[str], object] = print
) -> KeepUp:
    paced = Load(load.seconds, load.connections, load.threads, rate=rate, quiet=PACED_QUIET)
    with tempfile.TemporaryDirectory(prefix="bench-keepup-") as scratch:
        run = await one_run(RELAY, Path(scratch), paced, url, sample_every=SAMPLE_EVERY)
    result = KeepUp(rate, run)
    log(describe(f"at {rate:,.0f} req/s", run))
    log(
        f"  backlogs at most: fold {result.fold.largest}, outbox {result.outbox.largest} events; "
        f"at the end oldest unfolded {result.oldest_unfolded:.3f} s, "
        f"oldest unpublished {result.oldest_unpublished:.3f} s"
    )
    return result
