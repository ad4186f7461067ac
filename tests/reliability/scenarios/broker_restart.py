"""Scenario 3: the broker dies mid-batch, many publishes in flight: nothing unconfirmed is marked.

Each round builds a backlog (broker stopped, CSS keeps sending), starts the broker, and the
moment the relay's first marks of the catch-up burst are committed (a window of publishes in
flight), crashes it (`kill -9` of the Erlang VM) or stops it. Once the relay has ended its pass
(`/readyz` reports the broker error; the pass's marks are committed by then), the outbox is
snapshotted: the ids marked published. A marked event is never published again, so if the
broker had not confirmed it (not on disk), it would be missing from the queue for good. Hence
the promise checked: every id marked at a crash is in the queue at the end; the unmarked ones
are published again after the restart (some twice: enqueued, but their confirm was lost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from testbed.broker import RabbitNode
from tests.reliability.scenarios import common
from tests.reliability.scenarios.broker import marked_count, outbox, publishing, wait_relay_down
from tests.reliability.scenarios.cssload import CssSender, Event, EventFactory
from tests.reliability.scenarios.delivery import audit_delivery, outbox_drains
from tests.reliability.scenarios.report import Findings, audit

Crash = Literal["kill", "stop"]
MARK_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RestartPlan:
    backlog: int = 6000  # events stored while the broker is down, per round
    rate: float = 500.0  # how fast CSS sends them
    live_rate: float = 40.0  # a steady trickle throughout, crashes included
    in_flight: int = 1000  # RECEIVER_PUBLISH_IN_FLIGHT: many publishes awaiting confirms
    crashes: tuple[Crash, ...] = ("kill", "stop", "kill")
    speedup: float = 20.0


QUICK = RestartPlan(backlog=3000, crashes=("kill",))  # CI size (tests/reliability)


@dataclass(frozen=True, slots=True)
class Snapshot:
    crash: Crash
    marked: frozenset[str]
    unpublished: int


async def broker_restart(workdir: Path, plan: RestartPlan, rabbit: RabbitNode) -> Findings:
    started = time.monotonic()
    findings = Findings("3 broker restart mid-batch")
    database = workdir / "broker-restart" / "receiver.db"
    factory = EventFactory()
    snapshots: list[Snapshot] = []
    async with publishing(rabbit) as pub:
        assert pub is not None
        process = common.service(
            database, **pub.env(RECEIVER_PUBLISH_IN_FLIGHT=str(plan.in_flight))
        )
        async with common.running(process), common.client() as session:
            sender = CssSender(
                session, process.url, common.KEY, token=common.TOKEN, speedup=plan.speedup
            )
            done = asyncio.Event()
            live = asyncio.create_task(sender.run(_until(factory, done), rate=plan.live_rate))
            try:
                for n, crash in enumerate(plan.crashes, 1):
                    await asyncio.to_thread(rabbit.stop)
                    await sender.run(factory.make(plan.backlog), rate=plan.rate)
                    await _start_until_burst(rabbit, database)
                    await asyncio.to_thread(rabbit.kill if crash == "kill" else rabbit.stop)
                    await wait_relay_down(session, process.url)
                    marked, unpublished, _ = await asyncio.to_thread(outbox, database)
                    snapshots.append(Snapshot(crash, frozenset(marked), unpublished))
                    await asyncio.to_thread(rabbit.start)
                    await outbox_drains(findings, database, f"after crash {n}")
            finally:
                done.set()
                await live
            await outbox_drains(findings, database, "after the load")
            await common.stop(process, findings)
        audit(findings, sender.ledger, database)
        delivered = await pub.drain()
        audit_delivery(findings, sender.ledger, database, delivered)
    in_queue = {m.message_id for m in delivered}
    for n, snap in enumerate(snapshots, 1):
        phantom = len(snap.marked - in_queue)
        findings.check(
            f"crash {n} ({snap.crash}): every event marked published is in the queue",
            phantom == 0,
            f"{len(snap.marked)} marked, {phantom} of them not in the queue",
        )
        findings.check(
            f"crash {n} ({snap.crash}): it hit mid-batch (events still unpublished)",
            snap.unpublished > 0,
            f"{snap.unpublished} unpublished at the crash, published again after it",
        )
    findings.notes.append(
        f"{len(snapshots)} broker crashes ({', '.join(s.crash for s in snapshots)}), each "
        f"during the catch-up burst of a {plan.backlog}-event backlog with up to "
        f"{plan.in_flight} publishes in flight; live traffic at {plan.live_rate:.0f}/s throughout"
    )
    findings.seconds = time.monotonic() - started
    return findings


def _until(factory: EventFactory, done: asyncio.Event) -> Iterator[Event]:
    """Fresh events until `done` is set (the sender paces them)."""
    for event in factory.stream():
        if done.is_set():
            return
        yield event


async def _start_until_burst(rabbit: RabbitNode, database: Path) -> None:
    """Start the broker; return once it is up and the relay's catch-up burst has committed
    its first marks (a full window of publishes in flight behind them)."""
    before = await asyncio.to_thread(marked_count, database)
    starting = asyncio.create_task(asyncio.to_thread(rabbit.start))
    deadline = time.monotonic() + MARK_DEADLINE_SECONDS
    while await asyncio.to_thread(marked_count, database) <= before:
        if starting.done() and starting.exception() is not None:
            await starting  # it failed: raise its error
        if time.monotonic() > deadline:
            raise TimeoutError("the relay did not start publishing the backlog")
        await asyncio.sleep(0.005)  # polling the database, bounded by the deadline
    await starting  # kill only a node whose start-up is complete
