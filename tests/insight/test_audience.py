"""`GET /api/audience` against the fake's DescribeGroupProIspPlayInfoList, and the API's
Beijing-time format read and written correctly."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.app import create_app
from receiver.insight.cache import AnswerCache
from receiver.insight.views import INSIGHT
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup
from receiver.tencent.monitoring import beijing_text, parse_api_time
from tests.conftest import ClientFactory
from tests.support.fake_tencent_monitoring import AudiencePoint, FakeStreams
from tests.support.helpers import get
from tests.support.tencent_helpers import credentials, instant

# Whole 5-minute points, the last one 10 minutes ago.
LAST = (int(time.time()) // 300) * 300 - 600
PLAY = "play.example.com"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def streams(streams: FakeStreams) -> FakeStreams:
    """The shared fake, seeded with this module's audience."""
    streams.audience = [
        AudiencePoint(LAST - 300, PLAY, "Guangdong", "China Telecom", 863.073, 6473.05, 540, 449),
        AudiencePoint(LAST, PLAY, "Guangdong", "China Telecom", 891.49, 6686.173, 524, 455),
        AudiencePoint(LAST, PLAY, "Guangdong", "China Unicom", 213.405, 1600.537, 132, 184),
        AudiencePoint(LAST, "other.example.com", "Beijing", "China Mobile", 1.0, 2.0, 3, 4),
    ]
    return streams


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], streams: FakeStreams
) -> Any:
    settings = make_settings(tencent_endpoint=streams.fake.url)
    setup = TencentSetup(credentials(), client_retry=instant())
    return await aiohttp_client(create_app(settings, tencent=setup))


def test_beijing_time_is_read_and_written_as_utc_plus_8() -> None:
    # The seed's example: 2019-03-29 09:00:00 Beijing time is 01:00 UTC.
    assert parse_api_time("2019-03-29 09:00:00") == datetime(2019, 3, 29, 1, tzinfo=UTC).timestamp()
    assert beijing_text(datetime(2019, 3, 29, 1, tzinfo=UTC).timestamp()) == "2019-03-29 09:00:00"
    # PushQualityData.Time carries a fraction; across midnight the date changes too.
    moment = datetime(2019, 6, 20, 17, 10, 39, 870_000, tzinfo=UTC).timestamp()
    assert parse_api_time("2019-06-21 01:10:39.87") == pytest.approx(moment)
    assert (
        parse_api_time("2019-01-04T11:59:58Z")
        == datetime(2019, 1, 4, 11, 59, 58, tzinfo=UTC).timestamp()
    )
    with pytest.raises(ValueError, match="not a Tencent API time"):
        parse_api_time("29/03/2019")


async def test_audience_matches_the_fake_and_is_cached_by_window(
    client: Any, streams: FakeStreams
) -> None:
    url = f"/api/audience?play_domain={PLAY}&since={LAST - 900}&until={LAST + 60}"
    answer = await get(client, url)
    assert answer["since"] == iso(LAST - 900) and answer["until"] == iso(LAST + 300)
    groups = {(g["province"], g["isp"]): g for g in answer["groups"]}
    assert set(groups) == {("Guangdong", "China Telecom"), ("Guangdong", "China Unicom")}
    telecom = groups["Guangdong", "China Telecom"]
    assert [p["time"] for p in telecom["points"]] == [iso(LAST - 300), iso(LAST)]
    assert telecom["points"][0] == {
        "time": iso(LAST - 300),
        "bandwidth_mbps": 863.073,
        "flux_mb": 6473.05,
        "requests": 449,
        "online": 540,
    }
    assert telecom["peak_online"] == 540 and telecom["flux_mb"] == round(6473.05 + 6686.173, 3)
    (call,) = [c for c in streams.fake.calls if c.action == "DescribeGroupProIspPlayInfoList"]
    assert call.params["StartTime"] == beijing_text(LAST - 900)  # Beijing form, as documented
    assert call.params["PlayDomains"] == [PLAY]

    # The same window, asked a little differently (inside the same 5-minute points): cached.
    again = await get(
        client, f"/api/audience?play_domain={PLAY}&since={LAST - 899}&until={LAST + 1}"
    )
    assert again["groups"] == answer["groups"] and again["cached"] is True
    assert streams.count("DescribeGroupProIspPlayInfoList") == 1

    only = await get(client, f"{url}&province=Guangdong&isp=China%20Unicom")
    (group,) = only["groups"]
    assert (group["province"], group["isp"], group["peak_online"]) == (
        "Guangdong",
        "China Unicom",
        132,
    )


async def test_windows_tencent_would_refuse_are_400(client: Any, streams: FakeStreams) -> None:
    now = int(time.time())
    too_long = await get(client, f"/api/audience?since={now - 40 * 86_400}", status=400)
    assert "31 days" in too_long["message"]
    backwards = await get(client, f"/api/audience?since={now - 60}&until={now - 120}", status=400)
    assert backwards["error"] == "invalid_window"
    bad = await get(client, "/api/audience?since=yesterday", status=400)
    assert "since" in bad["message"]
    assert streams.fake.calls == []


async def test_throttled_audience_is_stale_or_503(client: Any, streams: FakeStreams) -> None:
    ticks = [0.0]
    client.server.app[INSIGHT].audience = AnswerCache(monotonic=lambda: ticks[0])
    url = f"/api/audience?since={LAST - 900}&until={LAST}"
    fresh = await get(client, url)
    ticks[0] += 3601
    streams.fake.fail("RequestLimitExceeded", times=100, action="DescribeGroupProIspPlayInfoList")
    stale = await get(client, url)
    assert stale["groups"] == fresh["groups"] and stale["stale"] is True
    assert "RequestLimitExceeded" in stale["stale_reason"]
    refused = await get(client, f"/api/audience?since={LAST - 1800}&until={LAST}", status=503)
    assert refused["error"] == "tencent_throttled"
