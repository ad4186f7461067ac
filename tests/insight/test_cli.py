"""`receiver streams quality ID` and `receiver tencent audience` against the fake CSS API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.cli import main
from receiver.settings import Settings
from tests.conftest import ClientFactory, ServerFactory
from tests.moderation.support import new_streams
from tests.support.css import push_begin
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY
from tests.support.fake_tencent_monitoring import AudiencePoint, FakeStreams, PushPoint
from tests.support.helpers import post

NOW = int(time.time())
LAST = (NOW // 300) * 300 - 600
Run = Callable[..., Coroutine[Any, Any, tuple[int, str, str]]]


@pytest.fixture
async def streams(aiohttp_server: ServerFactory) -> FakeStreams:
    streams = new_streams()
    server = await aiohttp_server(streams.install())
    streams.fake.url = str(server.make_url(""))
    return streams


@pytest.fixture
def cli(
    streams: FakeStreams,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("RECEIVER_TENCENT_ENDPOINT", streams.fake.url)
    monkeypatch.setenv("RECEIVER_TENCENT_RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RECEIVER_DATABASE", str(database))

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_streams_quality(
    cli: Run,
    streams: FakeStreams,
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    await post(client, push_begin("c1", "s1", NOW - 600))
    streams.push_points = [PushPoint(NOW - 590, "c1", "s1", video_fps=24, video_rate=701_528)]
    code, out, err = await cli("streams", "quality", "c1")
    assert code == 0, err
    assert "session s1 (open)" in out and "701.528" in out and "1280*720" in out
    code, out, _ = await cli("streams", "quality", "c1", "--json")
    assert json.loads(out)["points"][0]["video_fps"] == 24
    code, _, err = await cli("streams", "quality", "nobody")
    assert code == 1 and "no events are stored" in err
    streams.fake.fail("RequestLimitExceeded", times=100, action="DescribeStreamPushInfoList")
    code, _, err = await cli("streams", "quality", "c1")
    assert code == 1 and "RequestLimitExceeded" in err


async def test_tencent_audience(cli: Run, streams: FakeStreams) -> None:
    streams.audience = [
        AudiencePoint(LAST, "p.example.com", "Guangdong", "China Telecom", 1.5, 2.5, 7, 9)
    ]
    code, out, err = await cli("tencent", "audience", "--since", str(LAST - 600))
    assert code == 0, err
    assert "Guangdong" in out and "China Telecom" in out and " 7 " in f" {out} "
    code, out, _ = await cli("tencent", "audience", "--json", "--province", "Beijing")
    assert json.loads(out)["groups"] == []
    code, _, err = await cli("tencent", "audience", "--since", "soon")
    assert code == 2 and "since" in err
