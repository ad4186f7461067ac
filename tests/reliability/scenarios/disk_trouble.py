"""Scenario 5: the database becomes unwritable under load, then writable again.

While it is unwritable, new callbacks must get 503 (so CSS retries), never a 200 for an event
that is not on disk, and `/readyz` must say `fail`. Once the disk recovers, the service must
recover by itself (no restart) and CSS's retries must deliver everything that was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp

from testbed.broker import RabbitNode
from testbed.service import ServiceProcess
from tests.reliability.scenarios import common
from tests.reliability.scenarios.broker import publishing
from tests.reliability.scenarios.cssload import RETRY_POLICIES, CssSender, EventFactory
from tests.reliability.scenarios.delivery import audit_delivery, outbox_drains
from tests.reliability.scenarios.disk import (
    DiskTrouble,
    FileSizeLimit,
    FullFilesystem,
    ReadOnlyFiles,
    Unavailable,
)
from tests.reliability.scenarios.report import Findings, audit

Mechanism = Literal["filesystem", "readonly", "fsize"]
SHORT = frozenset(t for t, p in RETRY_POLICIES.items() if p.retries < 5)
READY_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class DiskPlan:
    mechanism: Mechanism = "filesystem"
    events: int = 600
    rate: float = 100.0
    outage_seconds: float = 3.0
    # Also kill the writer, then the whole service, while the disk is bad: what restarts then
    # must recover too. Not with RLIMIT_FSIZE: the limit belongs to the writer process.
    restart_during_outage: bool = True
    speedup: float = 30.0  # 1 min -> 2 s: the outage stays well inside CSS's retry window


async def disk_trouble(workdir: Path, plan: DiskPlan, rabbit: RabbitNode | None = None) -> Findings:
    """Scenario 5; with `rabbit`, publishing is on: refused marks must not lose or fake one."""
    started = time.monotonic()
    findings = Findings(f"5 disk trouble: {plan.mechanism}")
    with _location(workdir / f"disk-{plan.mechanism}", plan.mechanism, findings) as (
        database,
        trouble,
    ):
        findings.notes.append(f"mechanism: {trouble.name}")
        async with publishing(rabbit) as pub:
            process = common.service(database, **(pub.env() if pub else {}))
            async with common.running(process), common.client() as session:
                sender = CssSender(
                    session, process.url, common.KEY, token=common.TOKEN, speedup=plan.speedup
                )
                load = asyncio.create_task(
                    sender.run(EventFactory().make(plan.events), rate=plan.rate)
                )
                await asyncio.wait_for(sender.ledger.wait_acked(plan.events // 5), 60)
                writer = process.writer_pid()
                restarts = plan.restart_during_outage and not isinstance(trouble, FileSizeLimit)
                try:
                    trouble.break_disk(process)
                    broken_at = dict(sender.ledger.outcomes)
                    ready = await _wait_ready(session, process, want=503)
                    findings.check(
                        "/readyz answers 503 fail while the disk is unwritable",
                        ready == 503,
                        f"last /readyz status {ready}",
                    )
                    await asyncio.sleep(plan.outage_seconds)  # the outage lasts; load goes on
                    if restarts:
                        await _restart_both(process)
                        ready = await _wait_ready(session, process, want=503)
                        findings.check(
                            "restarted on the bad disk, the service starts and reports fail",
                            ready == 503,
                            f"last /readyz status {ready}",
                        )
                    during = sender.ledger.outcomes.copy()
                    during.subtract(broken_at)
                finally:
                    trouble.repair()
                ready = await _wait_ready(session, process, want=200)
                findings.check(
                    "/readyz recovers to 200 by itself",
                    ready == 200,
                    f"last /readyz status {ready}",
                )
                await load
                if not restarts:
                    findings.check(
                        "the writer process was not restarted",
                        process.writer_pid() == writer,
                        "same writer pid throughout",
                    )
                if pub is not None:
                    await outbox_drains(findings, database)
                await common.stop(process, findings)
            audit(findings, sender.ledger, database)
            if pub is not None:
                audit_delivery(findings, sender.ledger, database, await pub.drain())
    findings.notes.append(
        "answers while unwritable: "
        + ", ".join(f"{k}x{v}" for k, v in sorted(during.items()) if v > 0)
    )
    if during["200"]:
        findings.notes.append(
            "the 200s while unwritable are events that still fit in space SQLite's WAL already "
            "had on disk: really committed (see lost)"
        )
    findings.check(
        "callbacks got 503 while the disk was unwritable",
        during["503"] > 0,
        f"{during['503']} x 503",
    )
    findings.check("no 500", findings.outcomes["500"] == 0, f"{findings.outcomes['500']} x 500")
    persistent = {t: n for t, n in sender.ledger.gave_up_types.items() if t not in SHORT}
    findings.check(
        "CSS's retries delivered every refused event",
        not persistent,
        f"given up, by event_type: {dict(sender.ledger.gave_up_types) or 'none'}",
    )
    findings.seconds = time.monotonic() - started
    return findings


async def _restart_both(process: ServiceProcess) -> None:
    """kill -9 the writer (the service restarts it), then the service (we restart it)."""
    os.kill(process.writer_pid(), signal.SIGKILL)
    await asyncio.to_thread(process.kill)
    await common.start(process)


@contextlib.contextmanager
def _location(
    directory: Path, mechanism: Mechanism, findings: Findings
) -> Iterator[tuple[Path, DiskTrouble]]:
    """Where the database lives, and how to break it; falls back to RLIMIT_FSIZE if need be."""
    database = directory / "receiver.db"
    if mechanism == "filesystem":
        try:
            with FullFilesystem.mounted(directory) as filesystem:
                yield database, filesystem
            return
        except Unavailable as exc:
            findings.notes.append(f"full filesystem unavailable here ({exc}); fell back")
    elif mechanism == "readonly":
        try:
            ReadOnlyFiles.probe(directory)
        except Unavailable as exc:
            findings.notes.append(f"read-only files unavailable here ({exc}); fell back")
        else:
            yield database, ReadOnlyFiles(database)
            return
    if mechanism != "fsize":
        findings.scenario = f"5 disk trouble: fsize (no {mechanism} here)"
    directory.mkdir(parents=True, exist_ok=True)
    yield database, FileSizeLimit(database)


async def _wait_ready(session: aiohttp.ClientSession, process: ServiceProcess, *, want: int) -> int:
    """Poll /readyz until it answers `want` (or the deadline passes); returns the last status."""
    status = 0
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status, _ = await common.get_json(session, f"{process.url}/readyz")
        if status == want:
            break
        await asyncio.sleep(0.05)  # polling, bounded by the deadline
    return status
