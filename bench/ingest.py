"""Ingest: bare aiohttp baseline vs the real `receiver serve`, same load, same run.

Runs alternate (baseline, receiver, baseline, ...) so that drift on a shared machine hits both
sides alike; each receiver run gets a fresh database, and its stored rows must match the 200s
wrk received (a 200 without a row would be a lost event; rows without a 200 are requests cut
off by the end of the run, which CSS would have retried).
"""

from __future__ import annotations

import secrets
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.bodies import templates
from bench.procs import Server, free_port, python_module
from bench.wrk import WrkResult, lua_script, run_wrk


@dataclass
class Side:
    """The runs of one server configuration."""

    name: str
    runs: list[WrkResult] = field(default_factory=list)
    cpu_ms_per_request: list[float] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(run, attribute) for run in self.runs))

    def summary(self) -> dict[str, float]:
        return {
            "req_per_s": round(self.median("rate"), 1),
            "p50_ms": round(self.median("p50_ms"), 2),
            "p99_ms": round(self.median("p99_ms"), 2),
            "cpu_ms_per_req": round(statistics.median(self.cpu_ms_per_request or [0.0]), 4),
            "runs": len(self.runs),
        }


def measure_ingest(
    *,
    runs: int,
    seconds: float,
    connections: int,
    amqp_url: str | None = None,
    log: Callable[[str], object] = print,
) -> dict[str, Side]:
    key = secrets.token_hex(8)
    baseline = Side("bare aiohttp")
    receiver = Side("receiver" + (" + relay" if amqp_url else ""))
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        for run in range(runs):
            for side in (baseline, receiver):
                port = free_port()
                database = Path(scratch) / f"run{run}.db"
                if side is baseline:
                    server = Server(python_module("bench.baseline", "--port", str(port)), port)
                else:
                    env = {
                        "RECEIVER_CALLBACK_KEYS": key,
                        "RECEIVER_DATABASE": str(database),
                        "RECEIVER_HOST": "127.0.0.1",
                        "RECEIVER_PORT": str(port),
                        "RECEIVER_LOG_LEVEL": "WARNING",
                    }
                    if amqp_url:
                        env["RECEIVER_AMQP_URL"] = amqp_url
                    server = Server(python_module("receiver", "serve"), port, env)
                try:
                    server.wait_healthy()
                    cpu_before = server.cpu_seconds()
                    script = lua_script(templates(key), nonce=f"r{run}{side.name[:3]}")
                    result = run_wrk(
                        f"{server.url}/callbacks",
                        script,
                        seconds=seconds,
                        connections=connections,
                    )
                    cpu = server.cpu_seconds() - cpu_before
                finally:
                    server.stop()
                side.runs.append(result)
                side.cpu_ms_per_request.append(1000 * cpu / max(result.requests, 1))
                if side is receiver:
                    stored = _count(database)
                    if stored < result.ok:
                        raise AssertionError(
                            f"lost events: {result.ok} answered 200 but {stored} rows stored"
                        )
                    if stored > result.requests + connections:
                        raise AssertionError(f"{stored} rows for {result.requests} requests")
                log(
                    f"  run {run + 1}/{runs} {side.name:<22} {result.rate:9.0f} req/s "
                    f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
                )
    return {"baseline": baseline, "receiver": receiver}


def _count(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()
