"""How the benchmark reads `/readyz` and judges backlogs, and how it searches the sustained rate.

No receiver here (a scripted `/readyz` at most): the smoke test runs these against a real
receiver, but only briefly, where no backlog has time to grow.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.readiness import (
    SETTLE_SECONDS,
    Sample,
    WrongReceiver,
    age_at_end,
    bound,
    folded,
    parse,
    wait_until,
)
from bench.sustained import STEP, search

READY: dict[str, dict[str, object] | str] = {
    "status": "ok",
    "database": {"writable": True},
    "fold": {"backlog": 12, "oldest_unfolded_age_seconds": 0.25},
    "broker": {"state": "connected", "backlog": 3, "oldest_unpublished_age_seconds": None},
}


def test_a_readiness_report_gives_both_backlogs() -> None:
    assert parse(READY, at=1.5) == Sample(1.5, 12, 0.25, 3, None)


def test_a_receiver_without_the_fold_section_is_refused_by_name() -> None:
    older = {k: v for k, v in READY.items() if k != "fold"}
    with pytest.raises(WrongReceiver, match="'fold' section"):
        parse(older, at=0.0)
    with pytest.raises(WrongReceiver, match="'fold' section"):
        parse({**READY, "fold": {"state": "ok"}}, at=0.0)


def samples(levels: list[int], every: float = 0.25) -> tuple[Sample, ...]:
    return tuple(Sample(round(i * every, 2), v, None, v, None) for i, v in enumerate(levels))


def test_a_sawtooth_of_batches_is_bounded() -> None:
    rate = 1000.0  # 10 s of sending, a batch of 400 folded every second
    levels = [(i % 4) * 100 for i in range(41)]
    result = bound(samples(levels), lambda s: s.fold_backlog, sending=10.0, rate=rate)
    assert result.ok, result
    assert result.end == 300
    assert result.largest == 300


def test_a_ramp_is_not_bounded_even_below_a_second_of_traffic() -> None:
    rate = 1000.0  # 5 % behind: 50 more rows every second
    levels = [round(12.5 * i) for i in range(41)]
    result = bound(samples(levels), lambda s: s.fold_backlog, sending=10.0, rate=rate)
    assert result.end <= rate
    assert not result.ok, result


def test_a_flat_backlog_over_a_second_of_traffic_is_not_bounded() -> None:
    levels = [1500] * 41
    result = bound(samples(levels), lambda s: s.outbox_backlog, sending=10.0, rate=1000.0)
    assert result.growth == 0
    assert not result.ok


def test_readings_after_sending_stopped_do_not_count() -> None:
    # The quiet tail drains the backlog: the end is read while requests were still sent.
    levels = [900] * 41 + [0] * 4
    result = bound(samples(levels), lambda s: s.fold_backlog, sending=10.0, rate=800.0)
    assert result.end == 900
    assert not result.ok
    ages = tuple(Sample(s.at, 0, 2.0 if s.at <= 10 else 0.0, 0, None) for s in samples(levels))
    assert age_at_end(ages, lambda s: s.oldest_unfolded, sending=10.0) == 2.0


async def test_the_search_probes_down_then_bisects() -> None:
    probed: list[float] = []

    async def holds(rate: float) -> bool:
        probed.append(rate)
        return rate <= 600

    found = await search(1000.0, holds, max_probes=8, refine=2)
    assert found is not None
    assert 600 * STEP < found <= 600
    descending = [1000 * STEP**n for n in range(5)]  # 1000 ... 522: the first that holds
    assert probed[:5] == pytest.approx(descending)
    assert len(probed) == 7
    assert found == max(r for r in probed if r <= 600)


async def test_the_search_stops_at_the_first_rate_that_holds() -> None:
    probed: list[float] = []

    async def holds(rate: float) -> bool:
        probed.append(rate)
        return True

    assert await search(1000.0, holds, max_probes=8, refine=2) == 1000.0
    assert probed == [1000.0]


async def test_the_search_gives_up_after_its_probes() -> None:
    async def never(rate: float) -> bool:
        return False

    assert await search(1000.0, never, max_probes=3, refine=2) is None


ServerFactory = Callable[..., Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


async def scripted(aiohttp_server: ServerFactory, readyz: Handler) -> str:
    """A server answering only `/readyz`, as `readyz` says; its URL."""
    app = web.Application()
    app.router.add_get("/readyz", readyz)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_the_fold_counts_as_drained_once_its_backlog_stays_at_zero(
    aiohttp_server: ServerFactory,
) -> None:
    # A zero between two non-zero readings (a batch committed while requests still land) is not
    # the end: the drain is the first reading of a stretch of zeros that holds.
    backlogs = iter([30, 0, 10, 0])
    served: list[float] = []

    async def readyz(request: web.Request) -> web.Response:
        served.append(time.perf_counter())
        backlog = next(backlogs, 0)
        fold = {"backlog": backlog, "oldest_unfolded_age_seconds": 0.1 if backlog else None}
        return web.json_response({**READY, "fold": fold})

    url = await scripted(aiohttp_server, readyz)
    drained = await wait_until(url, folded, what="folded", since=0.0, within=10.0)
    assert served[3] <= drained < served[4]
    assert served[-1] - drained >= SETTLE_SECONDS


async def test_a_backlog_that_never_drains_fails_naming_it(
    aiohttp_server: ServerFactory,
) -> None:
    async def readyz(request: web.Request) -> web.Response:
        return web.json_response(READY)  # 12 rows, forever

    url = await scripted(aiohttp_server, readyz)
    with pytest.raises(AssertionError, match="still not folded"):
        await wait_until(url, folded, what="folded", since=0.0, within=0.3)
