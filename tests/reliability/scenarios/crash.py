"""Scenario 1: `kill -9` under load, at random moments, then restart; nothing acked is lost.

Three ways to crash, chosen at random: the HTTP process alone (its writer sees the pipe close,
commits what it has and exits), the writer process alone (the service answers 503 and restarts
it), or both at once (a container killed). CSS keeps sending and retrying throughout. With a
broker, publishing is on all along: every acknowledged event must also reach the audit queue
after the restarts (a kill between a confirm and its mark may duplicate it, same message_id).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.broker import RabbitNode
from testbed.service import ServiceProcess
from tests.reliability.scenarios import common
from tests.reliability.scenarios.broker import publishing
from tests.reliability.scenarios.cssload import RETRY_POLICIES, CssSender, EventFactory
from tests.reliability.scenarios.delivery import audit_delivery, outbox_drains
from tests.reliability.scenarios.report import Findings, audit

VICTIMS = ("service", "writer", "fold", "all")
SHORT = frozenset(t for t, p in RETRY_POLICIES.items() if p.retries < 5)


@dataclass(frozen=True, slots=True)
class CrashPlan:
    events: int = 3000
    rate: float = 300.0  # events started per second
    crashes: int = 8
    # CSS retries for 10-12 minutes; a restart takes seconds. Shortened 20x (1 min -> 3 s), a
    # restart slowed down by a busy machine still fits many times in the retry window.
    speedup: float = 20.0
    seed: int | None = None


QUICK = CrashPlan(events=400, rate=150, crashes=3)  # CI size (tests/reliability)


async def crash_under_load(
    workdir: Path, plan: CrashPlan, rabbit: RabbitNode | None = None
) -> Findings:
    """Scenario 1; with `rabbit`, publishing is on and the queue is audited too."""
    started = time.monotonic()
    seed = plan.seed if plan.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    findings = Findings("1 crash (kill -9) under load")
    database = workdir / "crash" / "receiver.db"
    kills: list[str] = []
    async with publishing(rabbit) as pub:
        process = common.service(database, **(pub.env() if pub else {}))
        sender = await _crash(process, plan, rng, kills, findings)
        audit(findings, sender.ledger, database)
        if pub is not None:
            audit_delivery(findings, sender.ledger, database, await pub.drain())
    findings.notes.append(f"seed {seed}; {len(kills)} kills: " + ", ".join(kills))
    findings.check(
        "crashes happened under load", len(kills) == plan.crashes, f"{len(kills)} of {plan.crashes}"
    )
    # CSS tries subtitles (338) and smart erase (347) only 3 times: an outage can outlast that.
    persistent = {t: n for t, n in sender.ledger.gave_up_types.items() if n and t not in SHORT}
    findings.check(
        "CSS's retries delivered every event it retries >= 5 times",
        not persistent,
        f"given up, by event_type: {dict(sender.ledger.gave_up_types) or 'none'}",
    )
    findings.check("no 500", findings.outcomes["500"] == 0, f"{findings.outcomes['500']} x 500")
    findings.seconds = time.monotonic() - started
    return findings


async def _crash(
    process: ServiceProcess,
    plan: CrashPlan,
    rng: random.Random,
    kills: list[str],
    findings: Findings,
) -> CssSender:
    """Load with kills at random moments; then the outbox drains (if publishing) and a stop."""
    async with common.running(process), common.client() as session:
        sender = CssSender(
            session, process.url, common.KEY, token=common.TOKEN, speedup=plan.speedup
        )
        load = asyncio.create_task(sender.run(EventFactory().make(plan.events), rate=plan.rate))
        step = max(1, plan.events // (plan.crashes + 1))
        for n in range(plan.crashes):
            # A random moment while callbacks stream in: after a random number of acks.
            target = n * step + rng.randint(1, step)
            done, _ = await asyncio.wait(
                [
                    load,
                    asyncio.ensure_future(asyncio.wait_for(sender.ledger.wait_acked(target), 120)),
                ],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if load in done:
                break
            victim = rng.choice(VICTIMS)
            restart = time.monotonic()
            await _kill(process, victim)
            if victim in ("service", "all"):
                await common.start(process)
            kills.append(f"{victim} ({time.monotonic() - restart:.1f} s down)")
        await load
        if "RECEIVER_AMQP_URL" in process.env:
            await outbox_drains(findings, process.database)
        await common.stop(process, findings)
    return sender


async def _kill(process: ServiceProcess, victim: str) -> None:
    if victim in ("writer", "all"):
        os.kill(process.writer_pid(), signal.SIGKILL)
    if victim in ("fold", "all"):
        os.kill(process.fold_pid(), signal.SIGKILL)
    if victim in ("service", "all"):
        await asyncio.to_thread(process.kill)
