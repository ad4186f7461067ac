"""`reconcile` against the real app (HTTP, storage on each engine) and the fake's push records."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.settings import Settings
from receiver.storage.engine import Database
from receiver.storage.reconciled import Reconciled
from receiver.times import iso_utc
from tests.conftest import ClientFactory
from tests.reconcile.support import events_of, run, sessions_of, stream_of, submitter
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.fake_tencent import FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.helpers import folded, get, post

NOW = time.time()
T = int(NOW) - 3600


def seed(fake: FakeTencent) -> FakeStreams:
    streams = FakeStreams.install(fake)
    streams.add_record(DOMAIN, APP, "whole", start=T, end=T + 600)  # we have both callbacks
    streams.add_record(DOMAIN, APP, "no-end", start=T + 100, end=T + 700)  # its end was lost
    streams.add_record(DOMAIN, APP, "lost", start=T + 200, end=T + 800, reason="bye")  # both
    streams.add_record(DOMAIN, APP, "no-begin", start=T + 300, end=T + 900)  # its begin lost
    return streams


@pytest.fixture
async def any_client(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> Any:
    """The app on each engine: the same findings, stored events and history from both."""
    return await aiohttp_client(create_app(make_settings(database=any_database)))


async def seed_callbacks(client: Any) -> None:
    await post(
        client,
        push_begin("whole", "1001", T),
        stream_end("whole", "1001", T + 600, duration_ms=600_000),
        push_begin("no-end", "2002", T + 100),
        stream_end("no-begin", "4004", T + 900, duration_ms=600_000),
        push_begin("ours", "5005", T + 400),  # Tencent has no record of this one
        stream_end("ours", "5005", T + 500, duration_ms=100_000),
    )


async def test_dry_run_reports_and_apply_stores_exactly_what_is_missing(
    any_client: Any, fake_tencent: FakeTencent
) -> None:
    seed(fake_tencent)
    await seed_callbacks(any_client)
    fake_tencent.fail("RequestLimitExceeded", times=2, action="DescribeLiveStreamEventList")

    dry = await run(any_client, fake_tencent, since=T - 600, until=NOW, apply=False)
    f = dry.findings
    assert [r.stream_name for r in f.missing] == ["lost"]
    assert [p.record.stream_name for p in f.missing_end] == ["no-end"]
    assert [p.record.stream_name for p in f.missing_begin] == ["no-begin"]
    assert [s.identity[2] for s in f.unknown] == ["ours"]
    assert dry.stored == [] and len(dry.bodies) == 4
    assert await events_of(any_client, "lost") == []  # a dry run changes nothing
    assert (await stream_of(any_client, "no-end"))["state"] == "live"

    applied = await run(any_client, fake_tencent, since=T - 600, until=NOW, apply=True)
    assert len(applied.stored) == 4
    reconciled = (await get(any_client, "/api/events?source=reconciled"))["events"]
    assert sorted(e["id"] for e in reconciled) == sorted(applied.stored)

    lost = await events_of(any_client, "lost")
    assert [(e["kind"], e["event_time"], e["source"]) for e in lost] == [
        ("stream_begin", _iso(T + 200), "reconciled"),
        ("stream_end", _iso(T + 800), "reconciled"),
    ]
    assert lost[1]["payload"]["errmsg"] == "bye"
    assert lost[1]["payload"]["push_duration"] == "600000"
    assert lost[0]["sequence"] == lost[1]["sequence"] == f"reconciled-{T + 200}"
    no_end = await stream_of(any_client, "no-end")
    assert (no_end["state"], no_end["state_source"]) == ("ended", "reconciled")
    assert [s["sequence"] for s in await sessions_of(any_client, "no-end")] == ["2002"]
    (no_begin,) = await sessions_of(any_client, "no-begin")
    assert (no_begin["sequence"], no_begin["begin_source"], no_begin["end_source"]) == (
        "4004", "reconciled", "callback",
    )  # fmt: skip
    whole = await stream_of(any_client, "whole")
    assert whole["state_source"] == "callback"

    again = await run(any_client, fake_tencent, since=T - 600, until=NOW, apply=True)
    assert again.bodies == [] and again.stored == []
    assert again.findings.matched == 4


async def test_a_late_real_callback_takes_over_its_reconciled_event(
    any_client: Any, fake_tencent: FakeTencent
) -> None:
    seed(fake_tencent)
    await seed_callbacks(any_client)
    await run(any_client, fake_tencent, since=T - 600, until=NOW, apply=True)
    before = {e["kind"]: e["id"] for e in await events_of(any_client, "lost")}

    # CSS finally delivers the lost push (a second off Tencent's record), and the lost end.
    await post(
        any_client,
        push_begin("lost", "3003", T + 201),
        stream_end("lost", "3003", T + 800, duration_ms=599_000),
        stream_end("no-end", "2002", T + 700, duration_ms=600_000, errcode=1),
    )
    lost = await events_of(any_client, "lost")
    assert {e["kind"]: e["id"] for e in lost} == before  # absorbed: no new event, same ids
    assert [(e["source"], e["sequence"], e["event_time"]) for e in lost] == [
        ("confirmed", "3003", _iso(T + 201)),  # the real one wins where they differ
        ("confirmed", "3003", _iso(T + 800)),
    ]
    assert "reconciled" not in lost[0]["payload"]
    (session,) = await sessions_of(any_client, "lost")
    assert (session["sequence"], session["state"]) == ("3003", "ended")
    no_end = await events_of(any_client, "no-end")
    assert [(e["kind"], e["source"]) for e in no_end] == [
        ("stream_begin", "callback"),
        ("stream_end", "confirmed"),
    ]
    assert no_end[1]["payload"]["errcode"] == 1
    # Its retries (the same body again) are plain duplicates.
    await post(any_client, push_begin("lost", "3003", T + 201))
    assert len(await events_of(any_client, "lost")) == 2


async def test_a_real_callback_stored_first_wins_over_the_reconciled_copy(
    any_client: Any, fake_tencent: FakeTencent
) -> None:
    """The sweep read Tencent's record, then the real callback came in before its events."""
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "race", start=T, end=T + 60)
    report = await run(any_client, fake_tencent, since=T - 600, until=NOW, apply=False)
    await post(
        any_client,
        push_begin("race", "7007", T),
        stream_end("race", "7007", T + 61, duration_ms=61_000),
    )
    await submitter(any_client).submit(report.bodies)
    await folded(any_client)
    race = await events_of(any_client, "race")
    assert [(e["kind"], e["source"], e["sequence"]) for e in race] == [
        ("stream_begin", "callback", "7007"),
        ("stream_end", "callback", "7007"),
    ]


def _iso(t: float) -> str:
    shown = iso_utc(t)
    assert shown is not None
    return shown


async def test_a_window_of_more_than_10000_records_is_split_and_fully_covered(
    client: Any, fake_tencent: FakeTencent
) -> None:
    streams = FakeStreams.install(fake_tencent)
    total = 10_050
    for n in range(total):  # 10,050 pushes ending within one hour
        start = T + n * 3600 / total
        streams.add_record(DOMAIN, APP, f"s{n}", start=start - 30, end=start)
    report = await run(client, fake_tencent, since=T - 60, until=T + 3600, apply=False)
    assert report.progress.splits >= 1
    assert report.records == total
    assert {r.stream_name for r in report.findings.missing} == {f"s{n}" for n in range(total)}
    pages = streams.calls("DescribeLiveStreamEventList")
    assert all(p["PageNum"] * p["PageSize"] <= 10_000 for p in pages)
    assert not fake_tencent.throttled  # the client kept to the documented 300 QPS


async def test_callbacks_far_from_any_reconciled_time_skip_the_lookups(
    client: Any, fake_tencent: FakeTencent, database: Path
) -> None:
    """The fold keeps its batch path for callbacks that cannot repeat a reconciled event."""
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "lost", start=T, end=T + 600)
    await run(client, fake_tencent, since=T - 600, until=NOW, apply=True)
    conn = sqlite3.connect(database)
    try:
        matcher = Reconciled(conn)
    finally:
        conn.close()

    def row(event_type: int, at: float, duration_ms: int | None = None) -> tuple[Any, ...]:
        return ("id", event_type, "k", "key", DOMAIN, APP, "x", at, "1", at, None, None, "{}",
                duration_ms)  # fmt: skip

    assert not matcher.concerns(row(1, NOW))  # a push beginning now
    assert not matcher.concerns(row(0, NOW, 60_000))
    assert matcher.concerns(row(1, T + 2))  # near the reconciled begin
    assert matcher.concerns(row(0, T + 601))  # near the reconciled end
    assert matcher.concerns(row(0, T + 900, 900_000))  # its push began at the reconciled begin
