"""Scenario 4: a retry storm. One callback 100 times at once, then again later: one row.

"Later" is a retry whose `t` has already passed but lies within the grace window (CSS retries
for ~12 minutes on a 10-minute signature), a retry re-signed with a fresh `t`, and, when
`restart` is set, both again after a `kill -9` and restart (deduplication must not live only
in memory). Every copy must be answered 200: CSS must stop retrying an event we stored. With a
broker, each event must also be published exactly once: the outbox is drained before the kill,
so a duplicate in the queue could only come from a retry stored or published again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.broker import RabbitNode
from tests.reliability.scenarios import common
from tests.reliability.scenarios.broker import publishing
from tests.reliability.scenarios.cssload import (
    SIGNATURE_VALIDITY_SECONDS,
    CssSender,
    Event,
    EventFactory,
    load_templates,
)
from tests.reliability.scenarios.delivery import audit_delivery, outbox_drains
from tests.reliability.scenarios.report import Findings, audit

GRACE_SECONDS = 300  # the service's default RECEIVER_SIGNATURE_GRACE_SECONDS


@dataclass(frozen=True, slots=True)
class StormPlan:
    copies: int = 100
    kinds: int | None = None  # how many templates (None: every example body)
    restart: bool = True


async def retry_storm(workdir: Path, plan: StormPlan, rabbit: RabbitNode | None = None) -> Findings:
    """Scenario 4; with `rabbit`, publishing is on and each event must be published once."""
    started = time.monotonic()
    findings = Findings("4 retry storm")
    database = workdir / "storm" / "receiver.db"
    templates = load_templates()[: plan.kinds]
    factory = EventFactory(templates)
    events = factory.make(len(templates))
    async with publishing(rabbit) as pub:
        process = common.service(database, **(pub.env() if pub else {}))
        async with common.running(process), common.client() as session:
            sender = CssSender(session, process.url, common.KEY, token=common.TOKEN)
            for event in events:
                await _storm(sender, event, sender.sign(event.body), plan.copies)
            rounds = ["fresh"]
            if plan.restart:
                if pub is not None:
                    await outbox_drains(findings, database, "before the kill")
                await asyncio.to_thread(process.kill)
                await common.start(process)
                rounds.append("after kill -9")
            for _ in rounds:
                for event in events:
                    late = time.time() - SIGNATURE_VALIDITY_SECONDS - GRACE_SECONDS // 2
                    copies = plan.copies // 2
                    await _storm(sender, event, sender.sign(event.body, now=late), copies)
                    await _storm(sender, event, sender.sign(event.body), copies)
            if pub is not None:
                await outbox_drains(findings, database)
            await common.stop(process, findings)
        audit(findings, sender.ledger, database)
        if pub is not None:
            audit_delivery(findings, sender.ledger, database, await pub.drain())
            findings.check(
                "one published message per event",
                findings.published == len(events) and findings.dup_in_queue == 0,
                f"{findings.published} events in the queue, {findings.dup_in_queue} duplicates",
            )
    copies = sender.ledger.attempts // max(1, len(events))
    findings.notes.append(
        f"{len(events)} events (every example body), each sent {copies} times: {plan.copies} "
        f"concurrently, then {plan.copies // 2} with an expired t inside the grace window and "
        f"{plan.copies // 2} re-signed, "
        + ("fresh and again after kill -9 + restart" if plan.restart else "without restart")
    )
    findings.check(
        "every copy answered 200",
        findings.outcomes["200"] == findings.attempts,
        f"{findings.outcomes['200']} of {findings.attempts}",
    )
    findings.check(
        "one row per event",
        findings.stored == len(events) and not findings.dup_rows,
        f"{findings.stored} events stored, {findings.dup_rows} more than once",
    )
    findings.seconds = time.monotonic() - started
    return findings


async def _storm(sender: CssSender, event: Event, data: bytes, copies: int) -> None:
    sender.ledger.sent.add(event.id)
    outcomes = await asyncio.gather(*(sender.attempt(event.path, data) for _ in range(copies)))
    for outcome in outcomes:
        await sender.ledger.record(event, outcome)
