"""Live-state correction and the background rounds, through the real app and the fake."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from receiver.app import create_app
from receiver.reconcile.scheduler import RECONCILER, Reconciler
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup
from tests.reconcile.support import events_of, sessions_of, stream_of
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.fake_tencent import FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.helpers import folded, post
from tests.support.tencent_helpers import credentials, instant

T = int(time.time()) - 600


@pytest.fixture
async def client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake_tencent: FakeTencent
) -> Any:
    settings = make_settings(
        tencent_endpoint=fake_tencent.url,
        tencent_reconcile_interval=3600,  # rounds are driven by the test
        tencent_reconcile_window_seconds=3600,
    )
    tencent = TencentSetup(credentials(), client_retry=instant())
    return await aiohttp_client(create_app(settings, tencent=tencent))


def reconciler(client: Any) -> Reconciler:
    app: web.Application = client.server.app
    return app[RECONCILER]


async def round_(client: Any) -> None:
    await reconciler(client).run_round()
    await folded(client)


async def test_a_lost_end_is_ended_after_two_looks_and_an_unseen_stream_goes_live(
    client: Any, fake_tencent: FakeTencent
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.go_live(DOMAIN, APP, "fine", at=T)
    streams.go_live(DOMAIN, APP, "unseen", at=T + 5)
    await post(client, push_begin("fine", "1", T), push_begin("ghost", "2", T + 1))

    await round_(client)
    assert (await stream_of(client, "ghost"))["state"] == "live"  # missing once: not yet
    unseen = await stream_of(client, "unseen")
    assert (unseen["state"], unseen["state_source"]) == ("live", "reconciled")
    assert unseen["last_begin"] == (await events_of(client, "unseen"))[0]["event_time"]

    await round_(client)
    ghost = await stream_of(client, "ghost")
    assert (ghost["state"], ghost["state_source"]) == ("ended", "reconciled")
    assert ghost["end_message"] == "not live at Tencent"
    (session,) = await sessions_of(client, "ghost")
    assert (session["sequence"], session["state"], session["end_source"]) == (
        "2", "ended", "reconciled",
    )  # fmt: skip
    fine = await stream_of(client, "fine")
    assert (fine["state"], fine["state_source"]) == ("live", "callback")
    assert (await stream_of(client, "unseen"))["open_sessions"] == 1  # not begun twice

    # The unseen stream's real end arrives: it closes the session the online list opened.
    streams.go_offline(DOMAIN, APP, "unseen")
    await post(client, stream_end("unseen", "9009", T + 65, duration_ms=60_000))
    unseen = await stream_of(client, "unseen")
    assert (unseen["state"], unseen["state_source"], unseen["sessions"]) == (
        "ended", "callback", 1,
    )  # fmt: skip

    ready = await client.get("/readyz")
    report = (await ready.json())["reconcile"]
    assert report["rounds"] == 2 and report["last"]["streams_ended"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_reconcile_rounds_total{result="ok"} 2.0' in metrics
    assert 'receiver_reconcile_found_total{finding="not_live"} 1.0' in metrics


async def test_a_failing_online_list_ends_nothing_and_reads_degraded(
    client: Any, fake_tencent: FakeTencent
) -> None:
    FakeStreams.install(fake_tencent)
    await post(client, push_begin("ghost", "2", T))
    fake_tencent.fail("InternalError", times=100, action="DescribeLiveStreamOnlineList")
    for _ in range(3):
        await round_(client)
    assert (await stream_of(client, "ghost"))["state"] == "live"  # Tencent's rule: keep it live
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200
    assert body["reconcile"]["error"].startswith("TencentApiError")
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_reconcile_rounds_total{result="error"} 3.0' in metrics


async def test_main_and_backup_pushes_keep_the_stream_live_while_either_pushes(
    client: Any, fake_tencent: FakeTencent
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.go_live(DOMAIN, APP, "duo", at=T)
    await post(client, push_begin("duo", "100", T), push_begin("duo", "200", T + 10))
    await round_(client)
    duo = await stream_of(client, "duo")
    assert (duo["state"], duo["open_sessions"]) == ("live", 2)
    await post(client, stream_end("duo", "100", T + 60, duration_ms=60_000))  # main stops
    await round_(client)
    assert (await stream_of(client, "duo"))["state"] == "live"  # the backup still pushes
