"""Scenario 7: SIGTERM under load. In-flight requests finish with 200 and are stored; new
connections are refused (CSS retries them), never accepted and then left without an answer.

In flight means the service has begun the request: here, clients that sent their headers and
half their body before the SIGTERM and send the rest only after the service stopped listening.
Meanwhile senders keep posting on fresh connections, and probes keep opening new ones.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.reliability.scenarios import common
from tests.reliability.scenarios.cssload import CssSender, Event, EventFactory
from tests.reliability.scenarios.report import Findings, audit

DEADLINE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ShutdownPlan:
    senders: int = 16
    in_flight: int = 8  # clients caught half-way through their body by the SIGTERM
    warmup_acks: int = 200


async def graceful_shutdown(workdir: Path, plan: ShutdownPlan) -> Findings:
    started = time.monotonic()
    findings = Findings("7 graceful shutdown (SIGTERM)")
    database = workdir / "shutdown" / "receiver.db"
    process = common.service(database)
    factory = EventFactory()
    stopping = asyncio.Event()
    async with common.running(process):
        connector = aiohttp.TCPConnector(limit=0, force_close=True)  # a new connection each
        async with aiohttp.ClientSession(connector=connector) as session:
            sender = CssSender(session, process.url, common.KEY, token=common.TOKEN)
            senders = [
                asyncio.create_task(_send_until_refused(sender, factory, stopping))
                for _ in range(plan.senders)
            ]
            await asyncio.wait_for(sender.ledger.wait_acked(plan.warmup_acks), DEADLINE_SECONDS)
            slow = [await _begin(process.port, sender, e) for e in factory.make(plan.in_flight)]
            # A barrier, not a sleep: once a request on a later connection has been answered,
            # the service has read the earlier ones' headers and begun them.
            await common.get_json(session, f"{process.url}/healthz")
            term = time.monotonic()
            assert process.proc is not None
            process.proc.send_signal(signal.SIGTERM)
            stopping.set()
            probes = await _probe_until_refused(process.port)
            for event, _, writer, rest in slow:
                sender.ledger.sent.add(event.id)
                writer.write(rest)  # the second half, after the service stopped listening
            answers = [await _answer(reader, writer) for _, reader, writer, _ in slow]
            for (event, *_), answer in zip(slow, answers, strict=True):
                status = answer.split(b" ", 2)[1].decode() if b" " in answer else "no answer"
                await sender.ledger.record(event, status)
            await asyncio.gather(*senders)
            code = await asyncio.to_thread(process.proc.wait, DEADLINE_SECONDS)
            elapsed = time.monotonic() - term
    audit(findings, sender.ledger, database)
    ok_answers = [a for a in answers if a.startswith(b"HTTP/1.1 200 ") and b'{"code":0}' in a]
    findings.check("in-flight requests finish with 200", len(ok_answers) == plan.in_flight,
                   f"{len(ok_answers)} of {plan.in_flight}")  # fmt: skip
    findings.check(
        "new connections are refused, not half-answered",
        probes["half-answered"] == 0 and probes["refused"] > 0,
        f"{dict(probes)}",
    )
    findings.check("exit code 0", code == 0, f"{code}")
    findings.check("exits well within the shutdown timeout (10 s)", elapsed < 10,
                   f"{elapsed:.1f} s after SIGTERM")  # fmt: skip
    findings.check("no 500", findings.outcomes["500"] == 0, f"{findings.outcomes['500']} x 500")
    findings.notes.append(
        f"{plan.senders} senders on fresh connections, {plan.in_flight} requests in flight "
        f"(half a body sent before SIGTERM); new-connection probes: {dict(probes)}; senders' "
        "connection errors after the stop are refusals CSS retries, not answers"
    )
    findings.seconds = time.monotonic() - started
    return findings


async def _send_until_refused(
    sender: CssSender, factory: EventFactory, stopping: asyncio.Event
) -> None:
    """One CSS sender: unique events back to back, until the service no longer takes them."""
    events = factory.stream()
    while True:
        event = next(events)
        sender.ledger.sent.add(event.id)
        outcome = await sender.attempt(event.path, sender.sign(event.body))
        await sender.ledger.record(event, outcome)
        if outcome != "200" and stopping.is_set():
            return


async def _begin(
    port: int, sender: CssSender, event: Event
) -> tuple[Event, asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    data = sender.sign(event.body)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {event.path}?token={common.TOKEN} HTTP/1.1\r\nHost: css\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    half = len(data) // 2
    writer.write(head + data[:half])
    await writer.drain()
    return event, reader, writer, data[half:]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), DEADLINE_SECONDS)
    except (ConnectionError, TimeoutError) as exc:
        return f"ERR {type(exc).__name__} ".encode()
    finally:
        writer.close()


async def _probe_until_refused(port: int) -> Counter[str]:
    """Open new connections after the SIGTERM until one is refused; classify each."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            seen["refused"] += 1
            return seen
        except ConnectionResetError:
            seen["reset, no answer"] += 1  # reset during the handshake, as the listener closed
            continue
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), DEADLINE_SECONDS)
        except (ConnectionError, TimeoutError):
            answer = b""
        finally:
            writer.close()
        if not answer:
            # Its handshake completed in the instant the listener closed: the kernel resets it.
            # Not one byte of an answer: to CSS that is a refusal, and it retries.
            seen["reset, no answer"] += 1
        elif answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"status": "ok"}'):
            seen["answered"] += 1
        else:
            seen["half-answered"] += 1
        await asyncio.sleep(0.001)  # pacing the probes, bounded by the deadline
    return seen
