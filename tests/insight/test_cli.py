"""`receiver streams quality ID` (on both engines) and `receiver tencent audience` against the
fake CSS API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import ClientFactory, TencentCli
from tests.support import engines
from tests.support.css import push_begin
from tests.support.fake_tencent_monitoring import AudiencePoint, FakeStreams, PushPoint
from tests.support.helpers import post

# Every test here on both engines (tests/support/engines.py).
database, make_settings = engines.database, engines.make_settings

NOW = int(time.time())
LAST = (NOW // 300) * 300 - 600


async def test_streams_quality(
    tencent_cli: TencentCli,
    streams: FakeStreams,
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    await post(client, push_begin("c1", "s1", NOW - 600))
    streams.push_points = [PushPoint(NOW - 590, "c1", "s1", video_fps=24, video_rate=701_528)]
    code, out, err = await tencent_cli("streams", "quality", "c1")
    assert code == 0, err
    assert "session s1 (open)" in out and "701.528" in out and "1280*720" in out
    code, out, _ = await tencent_cli("streams", "quality", "c1", "--json")
    assert json.loads(out)["points"][0]["video_fps"] == 24
    code, _, err = await tencent_cli("streams", "quality", "nobody")
    assert code == 1 and "no events are stored" in err
    streams.fake.fail("RequestLimitExceeded", times=100, action="DescribeStreamPushInfoList")
    code, _, err = await tencent_cli("streams", "quality", "c1")
    assert code == 1 and "RequestLimitExceeded" in err


async def test_tencent_audience(tencent_cli: TencentCli, streams: FakeStreams) -> None:
    streams.audience = [
        AudiencePoint(LAST, "p.example.com", "Guangdong", "China Telecom", 1.5, 2.5, 7, 9)
    ]
    code, out, err = await tencent_cli("tencent", "audience", "--since", str(LAST - 600))
    assert code == 0, err
    assert "Guangdong" in out and "China Telecom" in out and " 7 " in f" {out} "
    code, out, _ = await tencent_cli("tencent", "audience", "--json", "--province", "Beijing")
    assert json.loads(out)["groups"] == []
    code, _, err = await tencent_cli("tencent", "audience", "--since", "soon")
    assert code == 2 and "since" in err
