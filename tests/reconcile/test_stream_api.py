"""The typed stream actions against the fake: shapes, documented limits, Region, throttling."""

from __future__ import annotations

import time

import aiohttp
import pytest

from receiver.reconcile.sweep import sweep
from receiver.reconcile.windows import plan
from receiver.tencent.client import RetryPolicy, TencentClient
from receiver.tencent.errors import TencentApiError
from receiver.tencent.streams import EventListQuery, LiveStreamApi, OnlineListQuery
from tests.support.fake_tencent import FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.tencent_helpers import credentials, instant

DOMAIN = "push.example.com"
DAY = 86400.0


def api(fake: FakeTencent, session: aiohttp.ClientSession) -> LiveStreamApi:
    client = TencentClient(session, credentials(), endpoint=fake.url, retry=instant())
    return LiveStreamApi(client)


async def test_event_list_reads_records_as_typed_models(fake_tencent: FakeTencent) -> None:
    streams = FakeStreams.install(fake_tencent)
    now = time.time()
    streams.add_record(DOMAIN, "live", "s1", start=now - 600, end=now - 300)
    streams.add_record(DOMAIN, "live", "s2", start=now - 200, end=now - 100, failed=True)
    async with aiohttp.ClientSession() as session:
        page = await api(fake_tencent, session).event_list(
            EventListQuery(start=now - 3600, end=now)
        )
    assert page.total_num == 1  # IsFilter=1: the failed push is left out
    (record,) = page.event_list
    assert record.identity == (DOMAIN, "live", "s1")
    assert record.stream_start_time == int(now - 600)
    assert record.duration == 300
    assert streams.calls("DescribeLiveStreamEventList")[0]["PageSize"] == 100


@pytest.mark.parametrize(
    ("start_ago", "end_ago", "page_num", "page_size"),
    [
        (61 * DAY, 50 * DAY, 1, 100),  # beyond the 60 days of history
        (40 * DAY, 9 * DAY, 1, 100),  # a window longer than 30 days
        (DAY, 0, 1, 101),  # PageSize above 100
        (DAY, 0, 101, 100),  # past the 10,000-entry cap
    ],
)
async def test_the_fake_refuses_what_the_documentation_forbids(
    fake_tencent: FakeTencent, start_ago: float, end_ago: float, page_num: int, page_size: int
) -> None:
    FakeStreams.install(fake_tencent)
    now = time.time()
    query = EventListQuery(
        start=now - start_ago, end=now - end_ago, page_num=page_num, page_size=page_size
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TencentApiError) as caught:
            await api(fake_tencent, session).event_list(query)
    assert caught.value.code == "InvalidParameterValue"


async def test_online_list_and_backup_groups(fake_tencent: FakeTencent) -> None:
    streams = FakeStreams.install(fake_tencent)
    now = time.time()
    streams.go_live(DOMAIN, "live", "s1", at=now - 60)
    streams.go_live(DOMAIN, "live", "s1", at=now - 30)
    streams.add_backup_group(
        "ap-guangzhou",
        "s1",
        [
            {"DomainName": DOMAIN, "AppName": "live", "UpstreamSequence": "10151483429474411508",
             "SourceFrom": "直推流", "MasterFlag": 0},
            {"DomainName": DOMAIN, "AppName": "live", "UpstreamSequence": "710313341080024599",
             "SourceFrom": "拉流转推(123)", "MasterFlag": 1},
        ],
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        streams_api = api(fake_tencent, session)
        online = await streams_api.online_list(OnlineListQuery())
        (group,) = await streams_api.backup_streams(region="ap-guangzhou")
        with pytest.raises(TencentApiError) as caught:
            await streams_api.client.call("DescribeBackupStreamList", {}, idempotent=True)
    (entry,) = online.online_info
    assert [p.publish_time for p in entry.publish_time_list] == [int(now - 60), int(now - 30)]
    assert [(p.upstream_sequence, p.master_flag) for p in group.backup_list] == [
        ("10151483429474411508", 0),
        ("710313341080024599", 1),
    ]
    assert caught.value.code == "MissingParameter"  # Region is required for this action


async def test_throttling_is_retried_and_loses_nothing(fake_tencent: FakeTencent) -> None:
    streams = FakeStreams.install(fake_tencent)
    now = time.time()
    streams.add_record(DOMAIN, "live", "s1", start=now - 600, end=now - 300)
    fake_tencent.fail("RequestLimitExceeded", times=2, action="DescribeLiveStreamEventList")
    async with aiohttp.ClientSession() as session:
        page = await api(fake_tencent, session).event_list(
            EventListQuery(start=now - 3600, end=now)
        )
    assert page.total_num == 1
    assert len(streams.calls("DescribeLiveStreamEventList")) == 3


async def test_a_sweep_throttled_by_tencent_is_slower_and_complete(
    fake_tencent: FakeTencent,
) -> None:
    """Another program spends the account's budget: Tencent allows us 2 calls a second while
    our buckets would allow 300. The sweep is refused, backs off, and still reads every page."""
    streams = FakeStreams.install(fake_tencent)
    fake_tencent.qps["DescribeLiveStreamEventList"] = 2
    now = time.time()
    for n in range(1000):
        streams.add_record(DOMAIN, "live", f"s{n}", start=now - 7200 + n, end=now - 3600 + n)
    retry = RetryPolicy(attempts=30, base_delay=0.2, max_delay=1.0)
    async with aiohttp.ClientSession() as session:
        client = TencentClient(session, credentials(), endpoint=fake_tencent.url, retry=retry)
        result = await sweep(LiveStreamApi(client), plan(now - 7200, now, now))
    assert fake_tencent.throttled  # it was refused for its rate...
    assert len(result.records) == 1000  # ...and lost nothing
    assert len({r.stream_name for r in result.records}) == 1000
