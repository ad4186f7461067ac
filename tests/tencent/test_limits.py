"""Per-action rates: the client keeps each action under its documented QPS, so a burst of calls
is slowed, never refused, and one action's budget never delays another's."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from receiver.tencent.client import TencentClient
from receiver.tencent.limits import DOCUMENTED_QPS, UNLISTED_QPS, ActionLimits
from tests.support.fake_tencent import FakeTencent
from tests.support.tencent_helpers import credentials, instant

ACTION = "DescribeBackupStreamList"  # documented at 20 QPS


def _client(
    fake: FakeTencent, session: aiohttp.ClientSession, limits: ActionLimits
) -> TencentClient:
    return TencentClient(
        session, credentials(), endpoint=fake.url, retry=instant(attempts=1), limits=limits
    )


async def test_a_burst_beyond_the_documented_rate_is_slowed_not_refused(
    fake_tencent: FakeTencent,
) -> None:
    fake_tencent.register(ACTION, lambda params: {"StreamInfoList": []})
    async with aiohttp.ClientSession() as session:
        client = _client(fake_tencent, session, ActionLimits())
        started = time.monotonic()
        await asyncio.gather(*(client.call(ACTION, {}, idempotent=True) for _ in range(50)))
        elapsed = time.monotonic() - started
    # 50 calls at no more than 20 in any second need well over 2 s; allow for a fast clock.
    assert elapsed >= 2.0
    assert fake_tencent.throttled == []
    assert [c.action for c in fake_tencent.calls] == [ACTION] * 50


async def test_the_fake_refuses_a_client_without_limits(fake_tencent: FakeTencent) -> None:
    """The fake's own rate check is what makes the test above able to fail."""
    fake_tencent.register(ACTION, lambda params: {"StreamInfoList": []})
    unlimited = ActionLimits({ACTION: 10_000})
    async with aiohttp.ClientSession() as session:
        client = _client(fake_tencent, session, unlimited)
        results = await asyncio.gather(
            *(client.call(ACTION, {}, idempotent=True) for _ in range(50)), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, Exception)]
    assert refused and all("RequestLimitExceeded" in str(r) for r in refused)
    assert fake_tencent.throttled


async def test_one_actions_budget_never_delays_another() -> None:
    limits = ActionLimits({"Slow": 1, "Fast": 1000})
    await limits.acquire("Slow")
    await asyncio.wait_for(asyncio.gather(*(limits.acquire("Fast") for _ in range(100))), 1.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limits.acquire("Slow"), 0.2)


def test_rates_follow_the_table_and_the_share() -> None:
    limits = ActionLimits(share=0.5)
    assert (
        limits.rate("DescribeStreamPushInfoList")
        == DOCUMENTED_QPS["DescribeStreamPushInfoList"] / 2
    )
    assert limits.rate("NotInTheTable") == UNLISTED_QPS / 2
    with pytest.raises(ValueError, match="share"):
        ActionLimits(share=0)
