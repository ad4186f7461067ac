"""The load generator behaves like CSS, or its figures mean nothing.

It is tested against a scripted HTTP endpoint (not our service): that endpoint answers what each
test needs (failures, silence) and records what arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.storage.dedupe import dedupe_key
from tests.reliability.scenarios.cssload import (
    ID_FIELD,
    IDENTITY_FIELDS,
    CssSender,
    EventFactory,
    Ledger,
    css_sign,
    load_templates,
)

KEY = "loadKey"


class Script:
    """Answers each attempt with the next scripted status ("hang" = never answer)."""

    def __init__(self, answers: list[int | str]) -> None:
        self.answers = answers
        self.received: list[tuple[str, dict[str, Any], str | None]] = []
        self.hanging = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, await request.json(), request.query.get("token")))
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "hang":
            await self.hanging.wait()  # released at the end of the test
        return web.Response(status=int(answer) if answer != "hang" else 200, text="{}")


async def _serve(aiohttp_server: Any, script: Script) -> TestServer:
    app = web.Application()
    app.router.add_post("/{tail:.*}", script.handle)
    server: TestServer = await aiohttp_server(app)
    return server


async def test_retries_on_any_non_200_and_on_silence_then_records_the_200(
    aiohttp_server: Any,
) -> None:
    script = Script([503, 500, 404, "hang", 200])
    server = await _serve(aiohttp_server, script)
    (event,) = EventFactory().make(1)
    async with aiohttp.ClientSession() as session:
        sender = CssSender(session, str(server.make_url("")), KEY, speedup=600, timeout=0.5)
        assert await sender.deliver(event)
    script.hanging.set()
    ledger = sender.ledger
    assert ledger.acked == {event.id} and not ledger.gave_up
    assert ledger.outcomes == Counter({"503": 1, "500": 1, "404": 1, "timeout": 1, "200": 1})
    # The same signed body every time (t is not refreshed unless asked), like a CSS retry.
    bodies = [body for _, body, _ in script.received]
    assert len(bodies) == 5 and all(body == bodies[0] for body in bodies)
    assert bodies[0]["sign"] == css_sign(KEY, bodies[0]["t"])
    assert int(time.time()) + 590 <= bodies[0]["t"] <= int(time.time()) + 600


async def test_gives_up_after_the_documented_number_of_retries(aiohttp_server: Any) -> None:
    server = await _serve(aiohttp_server, Script([503] * 100))
    templates = load_templates()
    factory = EventFactory([next(t for t in templates if t["event_type"] == n) for n in (1, 200)])
    begin, snapshot = factory.make(2)
    async with aiohttp.ClientSession() as session:
        sender = CssSender(session, str(server.make_url("")), KEY, speedup=6000)
        results = await asyncio.gather(sender.deliver(begin), sender.deliver(snapshot))
    assert list(results) == [False, False]
    assert sender.ledger.acked == set()
    assert sender.ledger.gave_up == {begin.id, snapshot.id}
    assert sender.ledger.attempts == (1 + 12) + (1 + 5)  # push: 1 min x 12; snapshot: 2 min x 5


async def test_events_of_every_kind_are_distinct_signed_and_sent_where_css_sends_them(
    aiohttp_server: Any,
) -> None:
    script = Script([])
    server = await _serve(aiohttp_server, script)
    templates = load_templates()
    events = EventFactory(templates).make(2 * len(templates))
    async with aiohttp.ClientSession() as session:
        sender = CssSender(session, str(server.make_url("")), KEY, token="tok")
        ledger: Ledger = await sender.run(events, rate=1000)
    assert ledger.acked == {e.id for e in events}
    received = {body[ID_FIELD]: (path, body, token) for path, body, token in script.received}
    assert len(received) == len(events)
    keys = set()
    for event in events:
        path, body, token = received[event.id]
        assert path == event.path and token == "tok"
        if event.event_type in (314, 328):
            assert "sign" not in body  # CSS does not sign relay and monitoring callbacks
        else:
            assert body["sign"] == css_sign(KEY, body["t"])
        for name in IDENTITY_FIELDS.get(event.event_type, ()):
            if name in body:
                assert event.id in str(body[name])
        keys.add((event.event_type, dedupe_key(event.event_type, json.loads(json.dumps(body)))))
    # No two generated events look like retries of each other to the receiver.
    assert len(keys) == len(events)
    assert {e.path for e in events} >= {"/callbacks", "/callbacks/stream-begin"}
