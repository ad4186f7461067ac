"""Ingest: bare aiohttp vs `receiver serve` (publishing off) vs `receiver serve` with the relay
publishing to RabbitMQ, under the same wrk load, alternating within each round.

Alternating (baseline, receiver, receiver + relay, baseline, ...) makes drift on a shared
machine hit every side alike, and each ratio is taken within a round. Every receiver run gets a
fresh database. The receiver acknowledges once a callback is in its inbox and folds it into an
event later, so each run then waits until `/readyz` reports the fold backlog at 0 (how long that
took is a figure of its own) and only then counts: no request refused, every request answered
200 stored as an event. With the relay, the run also waits until every stored event was
confirmed by the broker and consumed from a bound queue: the end-to-end figures.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import FOLD, HTTP, RELAY_PROCESS, WRITER, cpu_by_role
from bench.readiness import Sample, cancel_all, finish, folded, read_once, sample, wait_until
from bench.service import (
    BASELINE,
    END_TO_END_TIMEOUT,
    RECEIVER,
    RELAY,
    EndToEnd,
    check_stored,
    count,
    serving,
    settle,
)
from bench.wrk import Load, WrkResult, drive


@dataclass(frozen=True, slots=True)
class Run:
    side: str
    wrk: WrkResult
    cpu_ms: dict[str, float]  # per request answered, by process role (http, writer, fold, ...)
    stored: int | None = None  # events, once the fold drained (receiver only)
    fold_drain: float | None = None  # seconds from the end of sending until fold backlog 0
    end_to_end: EndToEnd | None = None
    samples: tuple[Sample, ...] = ()  # while the load ran, and one right after it
    streams: int | None = None  # distinct streams among the stored events
    sending: float = 0.0  # seconds after the start during which requests were sent

    @property
    def http_cpu_ms(self) -> float:
        return self.cpu_ms.get(HTTP, 0.0)

    @property
    def writer_cpu_ms(self) -> float | None:
        return self.cpu_ms.get(WRITER)

    @property
    def fold_cpu_ms(self) -> float | None:
        return self.cpu_ms.get(FOLD)

    @property
    def relay_cpu_ms(self) -> float | None:
        return self.cpu_ms.get(RELAY_PROCESS)


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
            "socket_errors": [r.wrk.errors for r in self.runs],
            "cpu_ms_per_req": [{k: round(v, 4) for k, v in r.cpu_ms.items()} for r in self.runs],
        }
        if any(r.writer_cpu_ms is not None for r in self.runs):
            out["writer_cpu_ms_per_req"] = round(self.median(lambda r: r.writer_cpu_ms), 4)
        if any(r.fold_cpu_ms is not None for r in self.runs):
            out["fold_cpu_ms_per_req"] = round(self.median(lambda r: r.fold_cpu_ms), 4)
        if any(r.relay_cpu_ms is not None for r in self.runs):
            out["relay_cpu_ms_per_req"] = round(self.median(lambda r: r.relay_cpu_ms), 4)
        if any(r.stored is not None for r in self.runs):
            out["stored"] = [r.stored for r in self.runs]
            out["streams_stored"] = [r.streams for r in self.runs]
            out["fold_drain_s"] = round(self.median(lambda r: r.fold_drain), 3)
            out["fold_drain_runs_s"] = [
                None if r.fold_drain is None else round(r.fold_drain, 3) for r in self.runs
            ]
        if any(r.end_to_end is not None for r in self.runs):
            e2e = [r.end_to_end for r in self.runs if r.end_to_end is not None]
            out["end_to_end_s"] = round(statistics.median(e.seconds for e in e2e), 3)
            out["after_load_s"] = round(statistics.median(e.after_load_seconds for e in e2e), 3)
            out["end_to_end_events_per_s"] = round(
                statistics.median(e.consumed / e.seconds for e in e2e), 1
            )
            out["consumed"] = [e.consumed for e in e2e]
            out["deliveries"] = [e.deliveries for e in e2e]
        return out

    @property
    def all_stored(self) -> bool:
        """Every request answered 200 is stored, in every run (the runs raise otherwise)."""
        return all(r.stored is not None and r.stored >= r.wrk.ok for r in self.runs)


def ratio(side: Side, baseline: Side) -> float:
    """The median of the per-round ratios of req/s (each round measures both back to back)."""
    pairs = zip(side.runs, baseline.runs, strict=True)
    return float(statistics.median(s.wrk.rate / b.wrk.rate for s, b in pairs))


async def measure_ingest(
    *,
    runs: int,
    load: Load,
    amqp_url: str | None,
    names: list[str] | None = None,
    log: Callable[[str], object] = print,
) -> dict[str, Side]:
    """`runs` rounds of `names`: by default baseline, receiver and (with `amqp_url`) receiver +
    relay."""
    if names is None:
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
    cpu = "cpu/req " + " ".join(f"{k} {v:.3f} ms" for k, v in run.cpu_ms.items())
    line = (
        f"  {prefix} {run.side:<17} {run.wrk.rate:8.0f} req/s  p50 {run.wrk.p50_ms:6.2f} ms  "
        f"p99 {run.wrk.p99_ms:6.2f} ms  {cpu}"
    )
    if run.fold_drain is not None:
        line += f"  folded {run.fold_drain:.2f} s after"
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
    """One server, one wrk run, the counts checked once the fold drained; with `sample_every`,
    `/readyz` is read that often during the load (both backlogs and their oldest rows' ages).

    CPU per request covers the load and the drain after it: the fold and the relay work after
    the last acknowledgement, and that work is part of what a request costs."""
    async with serving(side, scratch, amqp_url, tag=tag) as service:
        before = service.server.snapshot()
        started = time.perf_counter()
        samples: list[Sample] = []
        tasks: list[asyncio.Task[Any]] = []
        sampler = watch = None
        if sample_every is not None:
            sampler = asyncio.create_task(sample(service.url, sample_every, started, samples))
            tasks.append(sampler)
        if load.quiet and service.database is not None:
            # The fold may empty its backlog during the quiet tail: watch from its start.
            watch = asyncio.create_task(
                wait_until(service.url, folded, what="folded",
                           since=started + load.sending, within=END_TO_END_TIMEOUT)
            )  # fmt: skip
            tasks.append(watch)
        try:
            result = await drive(service.url, service.key, load)
            finished = time.perf_counter()
            if sampler is not None:
                await finish(sampler)
                samples.append(await read_once(service.url, started))
            sending_end = started + load.sending if load.quiet else finished
            settled = None
            if service.database is not None:
                settled = await settle(
                    service, started=started, sending_end=sending_end, folded_at=watch
                )
            after = service.server.snapshot()
            streams = (
                count(service.database, "SELECT count(DISTINCT stream_id) FROM events")
                if service.database is not None
                else None
            )
        finally:
            await cancel_all(tasks)
    cpu = {role: 1000 * seconds / max(result.ok, 1)
           for role, seconds in cpu_by_role(before, after).items()}  # fmt: skip
    run = Run(side, result, cpu, samples=tuple(samples), sending=sending_end - started)
    if settled is None:
        return run
    check_stored(settled.stored, [result], load.connections)
    return Run(
        side, result, cpu, settled.stored, settled.fold_drain, settled.end_to_end,
        tuple(samples), streams, sending_end - started,
    )  # fmt: skip
