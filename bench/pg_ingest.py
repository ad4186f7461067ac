"""Ingest on PostgreSQL: bare aiohttp vs `receiver serve` on SQLite (one node) vs `receiver
serve` on PostgreSQL with 1, 2, ... replicas, under the same wrk load, alternating within each
round (publishing off).

The replicas share one database; the load generator spreads its connections over them: one wrk
per replica, all at once, the connections split evenly. Their 200s are summed into one rate and
the worst p99 of them is the run's (no replica's tail hides behind another's). Every PostgreSQL
run gets a fresh database on the server (`CREATE DATABASE`, dropped after), so rounds compare.

On PostgreSQL a 200 means committed, so there is no backlog to wait for: once the replicas
stopped (SIGTERM: what they were given is committed or refused), the events are counted and
checked against the 200s, as for SQLite (`check_stored`). The dedupe index makes "once" exact.

With a private cluster (`--database postgresql`, no host) the server's own CPU is read from its
processes too: the backends compete for the same cores as the replicas and wrk.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.ingest import Run, one_run
from bench.procs import Proc, Server, cpu_by_role, descendants, python_module, usage
from bench.service import BASELINE, RECEIVER, check_stored, receiver_env
from bench.wrk import Load, WrkResult, drive
from testbed.postgres import PostgresCluster
from testbed.service import free_port

SQLITE = "receiver, SQLite"
POSTGRES = "postgresql"  # `--database postgresql`: a private cluster for the run


def pg_side(replicas: int) -> str:
    return f"PostgreSQL x{replicas}"


@contextlib.contextmanager
def server_url(database: str) -> Iterator[tuple[str, int | None]]:
    """The server to measure: `database` itself, or with no host (`postgresql`, `postgresql:`),
    a private cluster in a temporary directory, stopped on the way out (Ctrl-C included). Yields
    the URL and, for a private cluster, its postmaster's pid (to read its CPU)."""
    if database.rstrip(":/") not in (POSTGRES, "postgres"):
        yield database, None
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster.url, cluster.pid
    finally:
        cluster.destroy()


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (user, password, host and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def fresh_database(url: str) -> AsyncIterator[str]:
    """A new empty database on `url`'s server (the role needs CREATEDB), dropped after."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await admin.close()
    try:
        yield with_database(url, name)
    finally:
        admin = await asyncpg.connect(url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def server_snapshot(pid: int | None) -> list[Proc]:
    """The PostgreSQL server's processes (postmaster and backends) as one role, `postgres`."""
    if pid is None:
        return []
    procs = []
    for each in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            procs.append(Proc(each, "postgres", usage(each)))
    return procs


def merge(results: list[WrkResult]) -> WrkResult:
    """Several wrk runs at once as one: counts and rates summed, the worst percentiles."""
    seconds = max(r.seconds for r in results)
    ok = sum(r.ok for r in results)
    rate = sum(r.rate for r in results)
    return WrkResult(
        requests=sum(r.requests for r in results),
        ok=ok,
        non2xx=sum(r.non2xx for r in results),
        errors=sum(r.errors for r in results),
        seconds=ok / rate if rate else seconds,  # so that `.rate` is the summed rate
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        cpu_seconds=sum(r.cpu_seconds for r in results),
    )


def split(load: Load, parts: int) -> list[Load]:
    """`load` spread over `parts` wrk runs: the connections split as evenly as they go."""
    base, extra = divmod(load.connections, parts)
    rate = None if load.rate is None else load.rate / parts
    return [
        Load(load.seconds, base + (i < extra), load.threads, rate, load.streams, load.quiet)
        for i in range(parts)
    ]


async def pg_run(
    replicas: int, url: str, scratch: Path, load: Load, *, server_pid: int | None, tag: str
) -> Run:
    """`replicas` receivers on a fresh database, one wrk each at once; the counts checked."""
    side = pg_side(replicas)
    if load.connections < replicas:
        raise ValueError(f"{load.connections} connections cannot spread over {replicas} replicas")
    key = secrets.token_hex(8)
    async with fresh_database(url) as database:
        servers = []
        try:
            for n in range(replicas):
                port = free_port()
                env = receiver_env(key, Path("unused"), port)
                env["RECEIVER_DATABASE"] = database
                log = scratch / f"{tag}pg{replicas}-{n}.log"
                servers.append(Server(python_module("receiver", "serve"), port, env, log=log))
            for server in servers:
                await asyncio.to_thread(server.wait_healthy, 60.0)
            before = [p for s in servers for p in s.snapshot()] + server_snapshot(server_pid)
            results = await asyncio.gather(
                *(drive(s.url, key, part)
                  for s, part in zip(servers, split(load, replicas), strict=True))
            )  # fmt: skip
            after = [p for s in servers for p in s.snapshot()] + server_snapshot(server_pid)
        finally:
            # SIGTERM: what a replica was given is committed (or refused) before it exits.
            for server in servers:
                await asyncio.to_thread(server.stop)
        stored, rows = await _count(database)
    merged = merge(list(results))
    check_stored(stored, list(results), max(load.connections // replicas, 1))
    if rows != stored:
        raise AssertionError(f"{rows} rows but {stored} distinct events")
    cpu = {role: 1000 * seconds / max(merged.ok, 1)
           for role, seconds in cpu_by_role(before, after).items()}  # fmt: skip
    return Run(side, merged, cpu, stored=stored, sending=merged.seconds)


async def _count(database: str) -> tuple[int, int]:
    """Distinct stored events (by dedupe key) and rows: equal unless an event was stored twice."""
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow(
            "SELECT count(DISTINCT (event_type, dedupe_key)) AS events, count(*) AS rows"
            " FROM events"
        )
        assert row is not None
        return int(row["events"]), int(row["rows"])
    finally:
        await conn.close()


@dataclass
class PgIngest:
    """The sides of one run, in the order measured; figures are medians."""

    sides: dict[str, list[Run]] = field(default_factory=dict)
    replicas: tuple[int, ...] = (1, 2)

    def rate(self, side: str) -> float:
        return float(statistics.median(r.wrk.rate for r in self.sides[side]))

    def ratio(self, side: str, to: str = BASELINE) -> float:
        """The median of the per-round ratios (each round measures every side back to back)."""
        pairs = zip(self.sides[side], self.sides[to], strict=True)
        return float(statistics.median(s.wrk.rate / b.wrk.rate for s, b in pairs))

    def summary(self, side: str) -> dict[str, Any]:
        runs = self.sides[side]
        roles = sorted({role for r in runs for role in r.cpu_ms})
        return {
            "req_per_s": round(self.rate(side), 1),
            "ratio_to_bare": round(self.ratio(side), 3),
            "p50_ms": round(statistics.median(r.wrk.p50_ms for r in runs), 2),
            "p99_ms": round(statistics.median(r.wrk.p99_ms for r in runs), 2),
            "rates": [round(r.wrk.rate, 1) for r in runs],
            "p99_runs_ms": [round(r.wrk.p99_ms, 2) for r in runs],
            "requests": [r.wrk.requests for r in runs],
            "ok": [r.wrk.ok for r in runs],
            "stored": [r.stored for r in runs],
            "socket_errors": [r.wrk.errors for r in runs],
            "cpu_ms_per_req": {
                role: round(statistics.median(r.cpu_ms.get(role, 0.0) for r in runs), 4)
                for role in roles
            },
        }


async def measure_pg_ingest(
    *,
    runs: int,
    load: Load,
    database: str,
    replicas: tuple[int, ...] = (1, 2),
    log: Callable[[str], object] = print,
) -> PgIngest:
    """`runs` rounds of: bare aiohttp, the receiver on SQLite, then on PostgreSQL with each
    number of `replicas` (a fresh database each time)."""
    result = PgIngest(replicas=replicas)
    names = [BASELINE, SQLITE, *map(pg_side, replicas)]
    result.sides = {name: [] for name in names}
    with (
        server_url(database) as (url, pid),
        tempfile.TemporaryDirectory(prefix="bench-pg-") as scratch,
    ):
        for n in range(runs):
            for name in names:
                started = time.perf_counter()
                if name == BASELINE:
                    run = await one_run(BASELINE, Path(scratch), load, None, tag=str(n))
                elif name == SQLITE:
                    run = await one_run(RECEIVER, Path(scratch), load, None, tag=str(n))
                else:
                    count = int(name.rsplit("x", 1)[1])
                    run = await pg_run(count, url, Path(scratch), load, server_pid=pid, tag=str(n))
                result.sides[name].append(run)
                cpu = " ".join(f"{k} {v:.3f}" for k, v in sorted(run.cpu_ms.items()))
                log(
                    f"  run {n + 1}/{runs} {name:<17} {run.wrk.rate:8.0f} req/s  "
                    f"p99 {run.wrk.p99_ms:6.2f} ms  stored {run.stored}/{run.wrk.ok}  "
                    f"cpu ms/req {cpu}  ({time.perf_counter() - started:.0f} s)"
                )
    return result
