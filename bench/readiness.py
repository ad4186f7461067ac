"""The receiver's backlogs as `GET /readyz` reports them, read the same way by every scenario.

The receiver acknowledges a callback once its raw bytes are in the inbox; the fold turns inbox
rows into events and the outbox relay publishes events, both off the acknowledgement's path. A
fast acknowledgement proves little unless both backlogs are watched, so every scenario reads them
here: `fold` (inbox rows not folded yet) and `broker` (events not yet confirmed by the broker).
A receiver whose `/readyz` has no `fold` section is not the one this benchmark measures: reading
it fails loudly instead of measuring something else in silence.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

POLL_SECONDS = 0.05
SETTLE_SECONDS = 0.25
# A backlog "grows" when its mean over the last quarter of the load exceeds the mean over the
# third quarter by more than this share of one second of offered traffic.
GROWTH_TOLERANCE = 0.10


class WrongReceiver(RuntimeError):
    """`/readyz` lacks a section the benchmark needs."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Both backlogs, `at` seconds after the load started (None: the service could not tell)."""

    at: float
    fold_backlog: int | None  # inbox rows not folded into events yet
    oldest_unfolded: float | None  # seconds; None also when nothing waits
    outbox_backlog: int | None  # events not confirmed by the broker yet
    oldest_unpublished: float | None

    def row(self) -> list[float | int | None]:
        return [self.at, self.fold_backlog, self.oldest_unfolded, self.outbox_backlog,
                self.oldest_unpublished]  # fmt: skip


SAMPLE_COLUMNS = [
    "at", "fold_backlog", "oldest_unfolded_s", "outbox_backlog", "oldest_unpublished_s"
]  # fmt: skip


def _section(document: Mapping[str, Any], name: str, *keys: str) -> Mapping[str, Any]:
    section = document.get(name)
    if not isinstance(section, Mapping) or any(key not in section for key in keys):
        raise WrongReceiver(
            f"GET /readyz has no {name!r} section with {', '.join(map(repr, keys))} (it has "
            f"{sorted(document)}): this benchmark measures the receiver with the inbox and fold "
            "write path, which reports its fold backlog there; is this an older receiver?"
        )
    return section


def parse(document: Mapping[str, Any], at: float) -> Sample:
    """A `/readyz` body as a sample; raises `WrongReceiver` if a section is missing."""
    fold = _section(document, "fold", "backlog", "oldest_unfolded_age_seconds")
    broker = _section(document, "broker", "backlog", "oldest_unpublished_age_seconds")
    return Sample(
        at,
        _count(fold["backlog"]),
        _age(fold["oldest_unfolded_age_seconds"]),
        _count(broker["backlog"]),
        _age(broker["oldest_unpublished_age_seconds"]),
    )


def _count(value: object) -> int | None:
    return None if value is None else int(str(value))


def _age(value: object) -> float | None:
    return None if value is None else float(str(value))


async def read(session: aiohttp.ClientSession, url: str, started: float) -> Sample:
    """One reading (any status: a 503 still reports the backlogs)."""
    async with session.get(f"{url}/readyz") as response:
        document = await response.json()
    if not isinstance(document, Mapping):
        raise WrongReceiver(f"GET /readyz answered {response.status} with {document!r}")
    return parse(document, round(time.perf_counter() - started, 3))


async def read_once(url: str, started: float) -> Sample:
    async with aiohttp.ClientSession() as session:
        return await read(session, url, started)


async def sample(url: str, every: float, started: float, into: list[Sample]) -> None:
    """Read `/readyz` every `every` seconds until cancelled."""
    async with aiohttp.ClientSession() as session:
        while True:
            into.append(await read(session, url, started))
            await asyncio.sleep(every)


async def finish(task: asyncio.Task[Any]) -> None:
    """Cancel a sampler; if it had failed (a wrong receiver, say), raise its error."""
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # this coroutine itself was cancelled


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Clean-up after an error: stop the helpers quietly (the error that matters is raised)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(
    url: str,
    condition: Callable[[Sample], bool],
    *,
    what: str,
    since: float,
    within: float,
) -> float:
    """The `time.perf_counter()` at which `condition` became true and then held for
    `SETTLE_SECONDS` (requests cut off at the end of a load may still be landing); polling
    starts at `since` (a `perf_counter` time, possibly still ahead) and gives up after `within`.
    """
    await asyncio.sleep(max(0.0, since - time.perf_counter()))
    deadline = time.perf_counter() + within
    held_since: float | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            reading = await read(session, url, since)
            now = time.perf_counter()
            if condition(reading):
                held_since = held_since or now
                if now - held_since >= SETTLE_SECONDS:
                    return held_since
            else:
                held_since = None
            if now > deadline:
                raise AssertionError(f"after {within:.0f} s, still not {what}: {reading}")
            await asyncio.sleep(POLL_SECONDS)


def folded(reading: Sample) -> bool:
    return reading.fold_backlog == 0


def published(reading: Sample) -> bool:
    return reading.outbox_backlog == 0


@dataclass(frozen=True, slots=True)
class Bound:
    """Whether one backlog stayed bounded while requests were sent.

    Bounded: at the end (the largest reading over the last second of sending) at most one second
    of offered traffic, and not growing over the last half (its mean over the last quarter no more
    than `GROWTH_TOLERANCE` of a second of traffic above its mean over the third). A stage that
    keeps up shows a sawtooth of batches around a level; one that falls behind, a ramp.
    """

    limit: float  # one second of offered traffic
    end: int
    largest: int
    growth: float

    @property
    def ok(self) -> bool:
        return self.end <= self.limit and self.growth <= GROWTH_TOLERANCE * self.limit

    def summary(self) -> dict[str, Any]:
        return {"end": self.end, "largest": self.largest, "growth": round(self.growth, 1),
                "limit": round(self.limit, 1), "bounded": self.ok}  # fmt: skip


def bound(
    samples: tuple[Sample, ...],
    backlog: Callable[[Sample], int | None],
    *,
    sending: float,
    rate: float,
) -> Bound:
    """`backlog` over the samples taken while requests were sent (the first `sending` seconds)."""
    known = [(s.at, v) for s in samples if s.at <= sending and (v := backlog(s)) is not None]

    def between(start: float, end: float) -> list[int]:
        return [v for at, v in known if start * sending <= at <= end * sending]

    last, third, fourth = between(1 - 1 / sending, 1), between(0.5, 0.75), between(0.75, 1)
    growth = statistics.mean(fourth) - statistics.mean(third) if third and fourth else 0.0
    return Bound(
        limit=max(rate, 1.0),
        end=max(last, default=0),
        largest=max((v for _, v in known), default=0),
        growth=growth,
    )


def age_at_end(
    samples: tuple[Sample, ...], age: Callable[[Sample], float | None], *, sending: float
) -> float:
    """The largest age over the last second of sending (0: nothing waited).

    The last second, not the last reading alone: `/readyz` counts a backlog and then looks up its
    oldest row, and the stage may empty it in between (a count with no age).
    """
    return max(
        (age(s) or 0.0 for s in samples if sending - 1.0 <= s.at <= sending),
        default=0.0,
    )
