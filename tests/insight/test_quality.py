"""`GET /api/streams/{stream_id}/quality` against the fake's DescribeStreamPushInfoList, on both
engines: the answer matches its data, a busy page costs one call, throttling or an unreachable
Tencent gives the cached answer (stale, with the reason) or 503 with the reason, never a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.app import create_app
from receiver.insight.cache import AnswerCache
from receiver.insight.views import INSIGHT
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup
from receiver.tencent.monitoring import BEIJING
from testbed.service import free_port
from tests.conftest import ClientFactory
from tests.support import engines
from tests.support.css import DOMAIN, push_begin, stream_end
from tests.support.fake_tencent_monitoring import FakeStreams, PushPoint
from tests.support.helpers import AUTH, get, post
from tests.support.tencent_helpers import credentials, instant

# Every test here on both engines (tests/support/engines.py).
database, make_settings = engines.database, engines.make_settings

NOW = int(time.time())
BEGIN = NOW - 600


async def app_client(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    endpoint: str | None,
) -> Any:
    if endpoint is None:
        return await aiohttp_client(create_app(make_settings()))
    settings = make_settings(tencent_endpoint=endpoint)
    setup = TencentSetup(credentials(), client_retry=instant())
    return await aiohttp_client(create_app(settings, tencent=setup))


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


async def test_quality_matches_the_fake_and_a_busy_page_costs_one_call(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
) -> None:
    client = await app_client(aiohttp_client, make_settings, streams.fake.url)
    await post(client, push_begin("q1", "10151483429474411508", BEGIN))
    streams.push_points = [
        PushPoint(BEGIN + 10.25, "q1", "10151483429474411508", video_fps=24, begin=BEGIN),
        PushPoint(BEGIN + 70.5, "q1", "10151483429474411508", video_rate=701_528, begin=BEGIN),
        PushPoint(BEGIN + 80, "q1", "999", video_fps=5),  # a backup push: another session
        PushPoint(BEGIN + 90, "q1x", "10151483429474411508"),  # another stream
    ]
    answer = await get(client, "/api/streams/q1/quality")
    assert answer["stream"] == {"domain": DOMAIN, "app_name": "live", "stream_id": "q1"}
    assert answer["sequence"] == "10151483429474411508" and answer["session_open"] is True
    assert answer["since"] == iso(BEGIN) and answer["cached"] is False
    assert answer["stale"] is False and answer["stale_reason"] is None
    first, second = answer["points"]
    assert first["time"] == iso(BEGIN + 10.25)  # "YYYY-MM-DD hh:mm:ss.ms", Beijing time
    assert first["video_fps"] == 24 and first["audio_bitrate_bps"] == 128_000
    assert first["resolution"] == "1280*720" and first["client_ip"] == "203.0.113.7"
    assert first["server_ip"] == "198.51.100.9" and first["lag_ms"] == -32
    assert second["time"] == iso(BEGIN + 70.5) and second["video_bitrate_bps"] == 701_528
    (call,) = [c for c in streams.fake.calls if c.action == "DescribeStreamPushInfoList"]
    beijing = datetime.fromtimestamp(BEGIN, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    assert call.params["StartTime"] == beijing
    assert (call.params["PushDomain"], call.params["AppName"]) == (DOMAIN, "live")

    # A busy page: 60 requests at once, one call (the rest share it or hit the cache).
    answers = await asyncio.gather(*(get(client, "/api/streams/q1/quality") for _ in range(60)))
    assert all(a["points"] == answer["points"] and a["cached"] for a in answers)
    assert streams.count("DescribeStreamPushInfoList") == 1
    assert streams.fake.throttled == []


async def test_ended_session_window_and_by_sequence(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
) -> None:
    client = await app_client(aiohttp_client, make_settings, streams.fake.url)
    long_ago = NOW - 5 * 3600
    await post(
        client,
        push_begin("q2", "s1", long_ago),
        stream_end("q2", "s1", NOW - 3600),
        push_begin("q2", "s2", NOW - 60),
    )
    streams.push_points = [PushPoint(NOW - 3700, "q2", "s1")]
    answer = await get(client, "/api/streams/q2/quality?sequence=s1")
    # A 4-hour session: its last 3 hours (the API's span).
    assert answer["since"] == iso(NOW - 3600 - 3 * 3600) and answer["until"] == iso(NOW - 3600)
    assert answer["session_open"] is False and len(answer["points"]) == 1
    assert (await get(client, "/api/streams/q2/quality"))["sequence"] == "s2"
    missing = await get(client, "/api/streams/q2/quality?sequence=nope", status=404)
    assert missing["error"] == "session_not_found"
    unknown = await get(client, "/api/streams/nobody/quality", status=404)
    assert unknown["error"] == "stream_not_found"
    await post(client, push_begin("q3", "old", NOW - 9 * 86_400))
    await post(client, stream_end("q3", "old", NOW - 8 * 86_400))
    expired = await get(client, "/api/streams/q3/quality", status=404)
    assert expired["error"] == "quality_expired"
    assert (await client.get("/api/streams/q2/quality")).status == 401


async def test_throttled_gives_the_cached_answer_or_503(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
) -> None:
    client = await app_client(aiohttp_client, make_settings, streams.fake.url)
    ticks = [0.0]
    insight = client.server.app[INSIGHT]
    insight.quality = AnswerCache(monotonic=lambda: ticks[0])
    await post(client, push_begin("q4", "s1", BEGIN), push_begin("q5", "s1", BEGIN))
    streams.push_points = [PushPoint(BEGIN + 5, "q4", "s1")]
    fresh = await get(client, "/api/streams/q4/quality")

    ticks[0] += 31  # the open session's answer is due again: Tencent throttles every call
    streams.fake.fail("RequestLimitExceeded", times=100, action="DescribeStreamPushInfoList")
    stale = await get(client, "/api/streams/q4/quality")
    assert stale["points"] == fresh["points"] and stale["stale"] is True
    assert "RequestLimitExceeded" in stale["stale_reason"] and stale["cached"] is True

    refused = await get(client, "/api/streams/q5/quality", status=503)
    assert refused["error"] == "tencent_throttled"
    assert "RequestLimitExceeded" in refused["message"]
    calls = len(streams.fake.calls)
    again = await get(client, "/api/streams/q5/quality", status=503)  # remembered: no call
    assert again == refused and len(streams.fake.calls) == calls


async def test_unreachable_or_unconfigured_tencent_is_503_with_a_reason(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    client = await app_client(aiohttp_client, make_settings, f"http://127.0.0.1:{free_port()}/")
    await post(client, push_begin("q6", "s1", BEGIN))
    answer = await get(client, "/api/streams/q6/quality", status=503)
    assert answer["error"] == "tencent_unavailable" and "reached" in answer["message"]

    bare = await aiohttp_client(create_app(make_settings(database=tmp_path / "bare.db")))
    answer = await get(bare, "/api/streams/q6/quality", status=503)
    assert answer["error"] == "tencent_not_configured"
    response = await bare.get("/api/audience", headers=AUTH)
    assert response.status == 503
