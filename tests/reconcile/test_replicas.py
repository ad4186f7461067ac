"""Reconciliation with two replicas on one PostgreSQL database (docs/scaling.md).

Two apps, each a real service on loopback with its own pool and intake, share one database and
the fake Tencent API: one replica runs a round while the other skips it, rounds on their own
come once per interval whichever replica's timer fires, and a reconciled event stored by one
replica gives way to its real callback arriving at the other (and the other way round), also
when both are stored at the same moment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.reconcile.rounds import ROUND_LOCK
from receiver.reconcile.scheduler import RECONCILER, ReconcileMetrics, Reconciler
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl
from receiver.storage.partitions import partition_of
from receiver.tencent.autoregister import TencentSetup
from tests.conftest import ClientFactory
from tests.reconcile.support import (
    events_of,
    run,
    sessions_of,
    stream_api,
    stream_of,
    submitter,
)
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.fake_tencent import FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.helpers import eventually_async, post, signed
from tests.support.postgres import fetch
from tests.support.tencent_helpers import credentials, instant

NOW = time.time()
T = int(NOW) - 3600
Replicas = tuple[Any, Any]


@pytest.fixture
def replica(
    pg_url: str,  # first: the database outlives the replicas
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    fake_tencent: FakeTencent,
) -> Callable[..., Any]:
    """A replica on the test's database, with rounds on (every `interval` seconds)."""

    async def start(interval: float = 3600) -> Any:
        settings = make_settings(
            database=PostgresUrl(pg_url),
            tencent_endpoint=fake_tencent.url,
            tencent_reconcile_interval=interval,
            tencent_reconcile_window_seconds=3600,
        )
        tencent = TencentSetup(credentials(), client_retry=instant())
        return await aiohttp_client(create_app(settings, tencent=tencent))

    return start


@pytest.fixture
async def replicas(replica: Callable[..., Any]) -> Replicas:
    """Two replicas whose rounds the test drives (their own timers would wait an hour)."""
    return await replica(), await replica()


def reconciler(client: Any) -> Reconciler:
    app: web.Application = client.server.app
    return app[RECONCILER]


async def readiness(client: Any) -> dict[str, Any]:
    report: dict[str, Any] = (await (await client.get("/readyz")).json())["reconcile"]
    return report


async def test_one_replica_runs_a_round_while_the_other_skips_it(
    replicas: Replicas, fake_tencent: FakeTencent, pg_url: str
) -> None:
    first, second = replicas
    streams = FakeStreams.install(fake_tencent)
    # Within the round's window, which ends now (not at import: a long suite collects first).
    begun = int(time.time()) - 1800
    streams.add_record(DOMAIN, APP, "lost", start=begun, end=begun + 60)
    fake_tencent.hold = asyncio.Event()  # Tencent answers slowly: the round is under way
    running = asyncio.ensure_future(reconciler(first).run_round(spacing=3600))

    async def round_lock_held() -> bool:
        # A bigint advisory key shows as (classid, objid) = its high and low 32 bits.
        rows = await fetch(
            pg_url,
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1 AND objid = $2 AND objsubid = 1",
            ROUND_LOCK >> 32,
            ROUND_LOCK & 0xFFFFFFFF,
        )
        return bool(rows)

    await eventually_async(round_lock_held, what="the first replica holds the round")
    assert await reconciler(second).run_round(spacing=3600) == (None, None)
    fake_tencent.hold.set()
    report, look = await running
    assert report is not None and look is not None and len(report.stored) == 2

    # The round is done, and it began less than an interval ago: the second replica skips.
    assert await reconciler(second).run_round(spacing=3600) == (None, None)
    sweeps = [c for c in fake_tencent.calls if c.action == "DescribeLiveStreamEventList"]
    assert len(sweeps) == 1  # Tencent's budget spent once
    assert [(e["kind"], e["source"]) for e in await events_of(second, "lost")] == [
        ("stream_begin", "reconciled"),
        ("stream_end", "reconciled"),
    ]
    ran, skipped = await readiness(first), await readiness(second)
    assert (ran["rounds"], ran["skipped"], ran["last"]["stored"]) == (1, 0, 2)
    assert (skipped["rounds"], skipped["skipped"], skipped["last"]) == (0, 2, None)
    assert skipped["last_skip"]["reason"].startswith("another replica began a round")
    metrics = await (await second.get("/metrics")).text()
    assert 'receiver_reconcile_rounds_total{result="skipped"} 2.0' in metrics

    # Asked for a round now (no spacing), the second replica runs one: it finds nothing new.
    report, _ = await reconciler(second).run_round()
    assert report is not None and report.stored == [] and report.findings.matched == 1


async def test_rounds_on_their_own_come_once_per_interval_across_replicas(
    replica: Callable[..., Any], fake_tencent: FakeTencent
) -> None:
    streams = FakeStreams.install(fake_tencent)
    began: list[float] = []  # when each round began its sweep (one page a round here)

    def sweep(params: dict[str, Any]) -> dict[str, Any]:
        began.append(time.monotonic())
        return streams.event_list(params)

    fake_tencent.register("DescribeLiveStreamEventList", sweep)
    interval = 0.5
    first, second = await replica(interval), await replica(interval)

    async def rounds() -> bool:
        return len(began) >= 5

    await eventually_async(rounds, what="five rounds")
    # Both timers fire every interval; a round that began less than an interval ago (less a
    # tenth, by the database's clock) makes the other replica skip. So five rounds span four
    # intervals (less what the latency of a round's first call can take off), where two
    # replicas without the gate would run two rounds an interval.
    span = began[4] - began[0]
    assert span > 4 * interval * 0.75, began
    skipped = (await readiness(first))["skipped"] + (await readiness(second))["skipped"]
    assert skipped >= 2
    for client in (first, second):  # before the fake closes: no round left calling it
        await client.close()


async def test_a_real_callback_at_another_replica_takes_over_the_reconciled_event(
    replicas: Replicas, fake_tencent: FakeTencent
) -> None:
    first, second = replicas
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "lost", start=T + 200, end=T + 800, reason="bye")
    await run(first, fake_tencent, since=T - 600, until=NOW, apply=True)
    before = {e["kind"]: e["id"] for e in await events_of(first, "lost")}

    # CSS finally delivers the lost push, to the other replica.
    answer = await second.post("/callbacks", json=signed_begin("lost", "3003", T + 201))
    assert answer.status == 200
    assert answer.headers["X-Event-Id"] == before["stream_begin"]  # the row it took over
    await post(second, stream_end("lost", "3003", T + 800, duration_ms=599_000))

    lost = await events_of(first, "lost")
    assert {e["kind"]: e["id"] for e in lost} == before  # no new event, the same ids
    assert [(e["source"], e["sequence"]) for e in lost] == [
        ("confirmed", "3003"),
        ("confirmed", "3003"),
    ]
    (session,) = await sessions_of(first, "lost")
    assert (session["sequence"], session["state"]) == ("3003", "ended")
    shown = await stream_of(first, "lost")
    assert (shown["sessions"], shown["state"], shown["state_source"]) == (1, "ended", "confirmed")
    assert shown["event_counts"]["stream_begin"] == shown["event_counts"]["stream_end"] == 1


async def test_a_reconciled_copy_stored_after_its_real_callback_is_not_stored(
    replicas: Replicas, fake_tencent: FakeTencent
) -> None:
    """The sweep read Tencent's record at one replica; the real callbacks were stored by the
    other before the reconciled copies came: those are duplicates of them."""
    first, second = replicas
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "race", start=T, end=T + 60)
    report = await run(first, fake_tencent, since=T - 600, until=NOW, apply=False)
    await post(
        second,
        push_begin("race", "7007", T),
        stream_end("race", "7007", T + 61, duration_ms=61_000),
    )
    ids = await submitter(first).submit(report.bodies)
    race = await events_of(second, "race")
    assert [(e["kind"], e["source"], e["sequence"]) for e in race] == [
        ("stream_begin", "callback", "7007"),
        ("stream_end", "callback", "7007"),
    ]
    # Answered, as any duplicate on PostgreSQL, with the ids of the events they repeat.
    assert ids == [e["id"] for e in race]


async def test_a_reconciled_event_and_its_real_callback_stored_at_once_end_as_one(
    replicas: Replicas, fake_tencent: FakeTencent, pg_url: str
) -> None:
    """Both replicas store into the stream's partition at the same moment: the partition lock
    puts one after the other, and the second matches the first, whichever it is."""
    first, second = replicas
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "both", start=T, end=T + 60)
    report = await run(first, fake_tencent, since=T - 600, until=NOW, apply=False)
    begin = [b for b in report.bodies if b["event_type"] == 1]

    other = await asyncpg.connect(pg_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(
            "SELECT 1 FROM ingest_partitions WHERE partition = $1 FOR UPDATE",
            partition_of("both"),
        )
        reconciled = asyncio.ensure_future(submitter(first).submit(begin))
        real = asyncio.ensure_future(
            second.post("/callbacks", json=signed_begin("both", "8008", T + 1))
        )

        async def both_wait() -> bool:
            waiting = await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
            return bool(waiting == 2)

        await eventually_async(both_wait, what="both stores wait for the partition")
        await transaction.commit()
        await reconciled
        assert (await real).status == 200
    finally:
        await other.close()
    (event,) = await events_of(first, "both")
    assert (event["sequence"], event["source"]) in {("8008", "confirmed"), ("8008", "callback")}
    (session,) = await sessions_of(first, "both")
    assert (session["sequence"], session["state"]) == ("8008", "live")


def signed_begin(stream: str, sequence: str, at: int) -> dict[str, Any]:
    return signed(push_begin(stream, sequence, at))


async def test_two_consecutive_looks_count_whichever_replica_looked(
    replicas: Replicas, fake_tencent: FakeTencent
) -> None:
    """A stream we hold live that Tencent does not list is ended at the second look in a row,
    also when the first look was another replica's."""
    first, second = replicas
    FakeStreams.install(fake_tencent)
    await post(first, push_begin("ghost", "2", T + 3000))
    await reconciler(first).run_round()
    assert (await stream_of(second, "ghost"))["state"] == "live"  # missing once: not yet
    _, look = await reconciler(second).run_round()
    assert look is not None and look.ended == [(DOMAIN, APP, "ghost")]
    ghost = await stream_of(first, "ghost")
    assert (ghost["state"], ghost["state_source"]) == ("ended", "reconciled")


class Unreachable:
    """A round gate whose database does not answer."""

    def hold(self, spacing: float) -> AbstractAsyncContextManager[str | None]:
        raise ConnectionRefusedError("the database is down")


async def test_a_round_the_database_cannot_gate_is_an_error_and_the_next_one_runs(
    fake_tencent: FakeTencent,
) -> None:
    FakeStreams.install(fake_tencent)
    registry = CollectorRegistry()
    metrics = ReconcileMetrics.create(registry)
    async with aiohttp.ClientSession() as session:
        gated = Reconciler(
            stream_api(fake_tencent, session),
            None,  # type: ignore[arg-type]  # never read: no round starts
            submitter=None,  # type: ignore[arg-type]
            metrics=metrics,
            window_seconds=3600,
            gate=Unreachable(),
        )
        assert await gated.run_round(spacing=60) == (None, None)
        assert await gated.run_round(spacing=60) == (None, None)  # still callable: not stuck
    check = await gated.check()
    assert check.status == "degraded" and "the database is down" in check.details["error"]
    assert registry.get_sample_value("receiver_reconcile_rounds_total", {"result": "error"}) == 2
    assert fake_tencent.calls == []
