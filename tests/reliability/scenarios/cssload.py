"""A load generator that behaves like Tencent CSS delivering callbacks (reference §1-2).

It knows nothing of the receiver's code: it signs realistic bodies of every kind the way CSS
does (`t` = send time + 600 s, `sign = md5(key + t)`), gives each event a unique id in the
fields that identify it, waits 20 s for an answer, and retries on any non-200 or silence with
the documented intervals divided by `speedup`. Its `Ledger` records every event it got a 200 for:
that is the set the receiver promised to keep.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from testbed import PAYLOADS

TIMEOUT_SECONDS: Final = 20.0  # CSS gives up on an attempt after 20 s without an answer
SIGNATURE_VALIDITY_SECONDS: Final = 600
ID_FIELD: Final = "cssload_id"  # an extra field (CSS adds fields too) naming the event


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How CSS retries one kind: `retries` more attempts, `interval` seconds apart."""

    interval: float
    retries: int


# Reference §1.3. Kinds with no documented policy get the common 1 min x 12 (an assumption).
DEFAULT_POLICY: Final = RetryPolicy(60.0, 12)
RETRY_POLICIES: Final[dict[int, RetryPolicy]] = {
    200: RetryPolicy(120.0, 5),
    338: RetryPolicy(60.0, 2),  # "3 attempts in total"; the interval is not stated
    347: RetryPolicy(60.0, 2),
}
# Kinds CSS does not sign (relay, monitoring): authenticated by the URL token only.
UNSIGNED: Final = frozenset({314, 328})
# The per-kind URLs of a callback template (reference §1.4); other kinds go to /callbacks.
PATHS: Final[dict[int, str]] = {
    1: "/callbacks/stream-begin",
    0: "/callbacks/stream-end",
    100: "/callbacks/record",
    200: "/callbacks/snapshot",
    317: "/callbacks/porn",
    321: "/callbacks/push-exception",
}
# The fields that identify an event of each kind for deduplication (reference §1.3): each
# generated event gets its id there, so distinct events are never mistaken for retries.
IDENTITY_FIELDS: Final[dict[int, tuple[str, ...]]] = {
    1: ("sequence",),
    0: ("sequence",),
    321: ("sequence",),
    100: ("record_file_id", "file_id"),
    332: ("session_id",),
    341: ("session_id",),
    200: ("pic_url",),
    317: ("img",),
    315: ("request_id",),
    314: ("task_id",),
}


def css_sign(key: str, t: int) -> str:
    return hashlib.md5(f"{key}{t}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    """One CSS event: its id, its body without `t`/`sign`, and the URL path it is sent to."""

    id: str
    event_type: int
    body: dict[str, Any]
    path: str

    @property
    def policy(self) -> RetryPolicy:
        return RETRY_POLICIES.get(self.event_type, DEFAULT_POLICY)


def load_templates(directory: Path = PAYLOADS) -> list[dict[str, Any]]:
    """Every example body (all kinds, current and legacy spellings), without `t`/`sign`."""
    templates = []
    for path in sorted(directory.glob("*.json")):
        body = json.loads(path.read_text("utf-8"))
        templates.append({k: v for k, v in body.items() if k not in ("t", "sign")})
    return templates


class EventFactory:
    """Unique events cycling through every template: `make(n)` or iterate `stream()`."""

    def __init__(self, templates: list[dict[str, Any]] | None = None) -> None:
        self._templates = templates if templates is not None else load_templates()
        self._run = secrets.token_hex(4)
        self._count = 0

    def make(self, n: int) -> list[Event]:
        stream = self.stream()
        return [next(stream) for _ in range(n)]

    def stream(self) -> Iterator[Event]:
        while True:
            template = self._templates[self._count % len(self._templates)]
            self._count += 1
            yield self.event(template, f"cssload-{self._run}-{self._count:07d}")

    @staticmethod
    def event(template: dict[str, Any], event_id: str) -> Event:
        event_type = int(template["event_type"])
        body = {**template, ID_FIELD: event_id}
        for name in IDENTITY_FIELDS.get(event_type, ()):
            if name in body:
                is_url = name in ("pic_url", "img")
                body[name] = f"https://example.invalid/{event_id}.jpg" if is_url else event_id
        return Event(event_id, event_type, body, PATHS.get(event_type, "/callbacks"))


@dataclass(slots=True)
class Ledger:
    """What the sender saw: every attempt's outcome and every event it got a 200 for."""

    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    gave_up: set[str] = field(default_factory=set)
    gave_up_types: Counter[int] = field(default_factory=Counter)
    attempts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "200", "503", "timeout", ...
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_acked(self, n: int) -> None:
        """Return once at least `n` events were acknowledged."""
        async with self._progress:
            await self._progress.wait_for(lambda: len(self.acked) >= n)

    async def record(self, event: Event, outcome: str) -> None:
        self.attempts += 1
        self.outcomes[outcome] += 1
        if outcome == "200":
            self.acked.add(event.id)
        async with self._progress:
            self._progress.notify_all()


class CssSender:
    """Delivers events like CSS: 20 s per attempt, retries on non-200 with shortened intervals.

    `speedup` divides the documented retry intervals (60 s / 120 s) so a test is fast; `resign`
    recomputes `t`/`sign` on each retry (whether CSS does is undocumented; the default keeps the
    first attempt's, the stricter case for the receiver).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        key: str,
        *,
        token: str | None = None,
        speedup: float = 60.0,
        timeout: float = TIMEOUT_SECONDS,
        resign: bool = False,
        ledger: Ledger | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._key = key
        self._params = {"token": token} if token else {}
        self._speedup = speedup
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._resign = resign
        self.ledger = ledger if ledger is not None else Ledger()

    def sign(self, body: dict[str, Any], *, now: float | None = None) -> bytes:
        """The body as CSS sends it: signed unless its kind is unsigned."""
        if int(body["event_type"]) in UNSIGNED:
            return json.dumps(body, ensure_ascii=False).encode()
        t = int(time.time() if now is None else now) + SIGNATURE_VALIDITY_SECONDS
        signed = {**body, "t": t, "sign": css_sign(self._key, t)}
        return json.dumps(signed, ensure_ascii=False).encode()

    async def deliver(self, event: Event) -> bool:
        """Send `event` until a 200 or the retries run out; True if it was acknowledged."""
        self.ledger.sent.add(event.id)
        data = self.sign(event.body)
        policy = event.policy
        for attempt in range(policy.retries + 1):
            if attempt:
                await asyncio.sleep(policy.interval / self._speedup)  # CSS's retry interval
                if self._resign:
                    data = self.sign(event.body)
            outcome = await self.attempt(event.path, data)
            await self.ledger.record(event, outcome)
            if outcome == "200":
                return True
        self.ledger.gave_up.add(event.id)
        self.ledger.gave_up_types[event.event_type] += 1
        return False

    async def attempt(self, path: str, data: bytes) -> str:
        """One POST; the outcome is the status code, `timeout` or the connection error's name."""
        try:
            async with self._session.post(
                self._base_url + path, data=data, params=self._params, timeout=self._timeout
            ) as response:
                await response.read()
                return str(response.status)
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError as exc:
            return type(exc).__name__

    async def run(self, events: Iterable[Event], *, rate: float) -> Ledger:
        """Start one event every 1/`rate` s (CSS does not wait for our answers) and finish all."""
        tasks: list[asyncio.Task[bool]] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n, event in enumerate(events):
            delay = started + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load, not waiting for a condition
            tasks.append(asyncio.create_task(self.deliver(event)))
        await asyncio.gather(*tasks)
        return self.ledger


def connector(limit: int = 256) -> aiohttp.TCPConnector:
    """Many parallel connections, like CSS's many senders (not one keep-alive queue)."""
    return aiohttp.TCPConnector(limit=limit, force_close=False)
