"""Scenario 2: RabbitMQ stops under load, CSS keeps sending, RabbitMQ starts again.

Callbacks must still be answered 200 (and stored) while the broker is down, `/readyz` must say
`degraded` with a growing backlog, and once the broker is back every acknowledged event must be
in the consumer queue, each stream in storage order once duplicates are dropped by message_id.
The broker is stopped for real (its AMQP port closes), or frozen (SIGSTOP: connections stay
open and nothing answers, so only the relay's timeouts notice); the outage lasts until a set
number of callbacks were acknowledged without it (and, frozen, until the relay gave up on it),
plus the broker's own start-up time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from testbed.broker import RabbitNode
from tests.reliability.scenarios import common
from tests.reliability.scenarios.broker import publishing, wait_relay_down
from tests.reliability.scenarios.cssload import CssSender, EventFactory
from tests.reliability.scenarios.delivery import audit_delivery, outbox_drains
from tests.reliability.scenarios.report import Findings, audit

ACK_DEADLINE_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class OutagePlan:
    events: int = 4000
    rate: float = 200.0
    before: int = 800  # acknowledged before the broker stops
    during: int = 1500  # acknowledged while it is stopped (then it starts again)
    speedup: float = 20.0
    mode: Literal["stop", "freeze"] = "stop"


QUICK = OutagePlan(events=900, rate=150, before=200, during=250)  # CI size


async def broker_outage(workdir: Path, plan: OutagePlan, rabbit: RabbitNode) -> Findings:
    started = time.monotonic()
    title = "stopped" if plan.mode == "stop" else "frozen (SIGSTOP)"
    findings = Findings(f"2 broker outage under load: {title}")
    database = workdir / "outage" / "receiver.db"
    async with publishing(rabbit) as pub:
        assert pub is not None
        process = common.service(database, **pub.env())
        async with common.running(process), common.client() as session:
            sender = CssSender(
                session, process.url, common.KEY, token=common.TOKEN, speedup=plan.speedup
            )
            acked = sender.ledger.acked
            load = asyncio.create_task(sender.run(EventFactory().make(plan.events), rate=plan.rate))
            await asyncio.wait_for(sender.ledger.wait_acked(plan.before), ACK_DEADLINE_SECONDS)
            down = time.monotonic()
            await asyncio.to_thread(rabbit.stop if plan.mode == "stop" else rabbit.pause)
            at_stop = len(acked)
            await asyncio.wait_for(
                sender.ledger.wait_acked(at_stop + plan.during), ACK_DEADLINE_SECONDS
            )
            if plan.mode == "freeze":
                await wait_relay_down(session, process.url)  # its publish timeouts expired
            status, report = await common.get_json(session, f"{process.url}/readyz")
            await asyncio.to_thread(rabbit.start if plan.mode == "stop" else rabbit.resume)
            during = len(acked) - at_stop
            outage = time.monotonic() - down
            await load
            await outbox_drains(findings, database)
            await common.stop(process, findings)
        audit(findings, sender.ledger, database)
        audit_delivery(findings, sender.ledger, database, await pub.drain())
    _check_degraded(findings, status, report)
    how = "stop, {} acks, start-up" if plan.mode == "stop" else "SIGSTOP, {} acks, SIGCONT"
    findings.notes.append(
        f"broker down {outage:.1f} s ({how.format(plan.during)}); {during} events "
        f"acknowledged meanwhile, all answered without it"
    )
    findings.check(
        "callbacks answered 200 throughout",
        findings.outcomes["200"] == findings.attempts,
        f"non-200: {sum(n for k, n in findings.outcomes.items() if k != '200')}",
    )
    findings.seconds = time.monotonic() - started
    return findings


def _check_degraded(findings: Findings, status: int, report: Any) -> None:
    broker = report.get("broker", {}) if isinstance(report, dict) else {}
    findings.check(
        "/readyz during the outage: 200 degraded, broker disconnected, backlog > 0",
        status == 200
        and report.get("status") == "degraded"
        and broker.get("state") == "disconnected"
        and (broker.get("backlog") or 0) > 0,
        f"{status} {report.get('status') if isinstance(report, dict) else report}, broker "
        f"{broker.get('state')}, backlog {broker.get('backlog')}",
    )
