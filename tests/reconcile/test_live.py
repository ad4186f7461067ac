"""Live-state correction and the background rounds, through the real app (on each engine) and
the fake."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from receiver.app import create_app
from receiver.cli import main as cli_main
from receiver.reconcile.scheduler import RECONCILER, Reconciler
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from receiver.tencent.autoregister import TencentSetup
from tests.reconcile.support import events_of, sessions_of, stream_of
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.fake_tencent_streams import FakeStreams, iso
from tests.support.helpers import eventually_async, folded, post
from tests.support.tencent_helpers import credentials, instant

T = int(time.time()) - 600


@pytest.fixture
def cli_database(any_database: Database) -> str:
    """What `--database` takes for the test's database."""
    return any_database.dsn() if isinstance(any_database, PostgresUrl) else str(any_database)


@pytest.fixture
async def client(
    aiohttp_client: Any,
    make_settings: Callable[..., Settings],
    fake_tencent: FakeTencent,
    any_database: Database,
) -> Any:
    """The service on each engine, with rounds and backup roles on."""
    settings = make_settings(
        database=any_database,
        tencent_endpoint=fake_tencent.url,
        tencent_reconcile_interval=3600,  # rounds are driven by the test
        tencent_reconcile_window_seconds=3600,
        tencent_backup_region="ap-guangzhou",
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
    client: Any, fake_tencent: FakeTencent, cli_database: str, capsys: pytest.CaptureFixture[str]
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
    assert await asyncio.to_thread(cli_main, ["streams", "--database", cli_database]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "live (reconciled)" in table[f"{DOMAIN}/{APP}/unseen"]
    assert "live (reconciled)" not in table[f"{DOMAIN}/{APP}/fine"]

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
    client: Any,
    fake_tencent: FakeTencent,
    cli_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.go_live(DOMAIN, APP, "duo", at=T)
    streams.go_live(DOMAIN, APP, "duo", at=T + 10)
    streams.add_backup_group(
        "ap-guangzhou",
        "duo",
        [
            {"DomainName": DOMAIN, "AppName": APP, "PublishTime": iso(T), "UpstreamSequence":
             "7100000000000000100", "SourceFrom": "直推流", "MasterFlag": 0},
            {"DomainName": DOMAIN, "AppName": APP, "PublishTime": iso(T + 10), "UpstreamSequence":
             "7100000000000000200", "SourceFrom": "直推流", "MasterFlag": 1},
        ],
    )  # fmt: skip
    main, backup = "7100000000000000200", "7100000000000000100"
    await post(client, push_begin("duo", backup, T), push_begin("duo", main, T + 10))
    await round_(client)
    duo = await stream_of(client, "duo")
    assert (duo["state"], duo["open_sessions"]) == ("live", 2)
    roles = {s["sequence"]: s["role"] for s in await sessions_of(client, "duo")}
    assert roles == {main: "main", backup: "backup"}
    await sessions_of(client, "duo")
    assert len(streams.calls("DescribeBackupStreamList")) == 1  # cached
    assert {c.region for c in fake_tencent.calls if c.action == "DescribeBackupStreamList"} == {
        "ap-guangzhou"
    }

    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("RECEIVER_TENCENT_ENDPOINT", fake_tencent.url)
    argv = ["tencent", "sessions", "duo", "--database", cli_database, "--region", "ap-guangzhou"]
    assert await asyncio.to_thread(cli_main, [*argv, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {s["sequence"]: s["role"] for s in listed} == {main: "main", backup: "backup"}

    # The main push stops: the stream stays live on the backup, which no longer needs a role.
    await post(client, stream_end("duo", main, T + 60, duration_ms=50_000))
    streams.go_offline(DOMAIN, APP, "duo")
    streams.go_live(DOMAIN, APP, "duo", at=T)
    await round_(client)
    duo = await stream_of(client, "duo")
    assert (duo["state"], duo["open_sessions"]) == ("live", 1)
    assert [s["role"] for s in await sessions_of(client, "duo")] == [None, None]


async def test_rounds_run_on_their_own_at_the_interval(
    aiohttp_client: Any,
    make_settings: Callable[..., Settings],
    fake_tencent: FakeTencent,
    any_database: Database,
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "lost", start=T, end=T + 60)
    settings = make_settings(
        database=any_database, tencent_endpoint=fake_tencent.url, tencent_reconcile_interval=0.2
    )
    tencent = TencentSetup(credentials(), client_retry=instant())
    client = await aiohttp_client(create_app(settings, tencent=tencent))

    async def stored() -> bool:
        await folded(client)
        return len(await events_of(client, "lost")) == 2

    await eventually_async(stored, what="a background round stored the lost push")
    body = await (await client.get("/readyz")).json()
    assert body["reconcile"]["rounds"] >= 1


def test_reconciliation_without_credentials_refuses_to_start(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValueError, match="TENCENTCLOUD_SECRET_ID"):
        create_app(make_settings(tencent_reconcile_interval=60))
