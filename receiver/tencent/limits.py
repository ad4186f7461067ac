"""Per-action request rates for the CSS API, so the receiver never earns `RequestLimitExceeded`.

Tencent limits each API action separately (seed 001, "API Category"; the team reference
`tencent-stream-apis.md` §1.0 and §3), account-wide. One token bucket per action, shared by every
client of one process (`ActionLimits` is made once per app and handed to each `TencentClient`),
keeps a sweep, a busy page or a burst of moderation actions under the documented rate; the client
still retries a `RequestLimitExceeded` with back-off, because other programs on the same account
spend the same budget.

`share` scales every rate down: with N replicas each calling the same actions, an operator sets
`RECEIVER_TENCENT_RATE_SHARE=1/N`-ish so that together they stay within the account's limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiolimiter import AsyncLimiter

# Documented queries per second, per action (account-wide): the team reference §1.0 (seed 001
# lines 1096-1290), §2 (seed 002, DescribeBackupStreamList) and §3 (monitoring). The registration
# actions (callback templates and rules) have no documented rate: they take `UNLISTED_QPS`.
DOCUMENTED_QPS: Mapping[str, int] = {
    # stream management (reconciliation, live state, stream control)
    "DescribeLiveStreamEventList": 300,
    "DescribeLiveStreamOnlineList": 100,
    "DescribeLiveStreamPublishedList": 300,
    "DescribeLiveStreamState": 300,
    "DescribeLiveForbidStreamList": 100,
    "DescribeBackupStreamList": 20,
    "DropLiveStream": 100,
    "ResumeLiveStream": 100,
    "ForbidLiveStream": 200,
    # monitoring data
    "DescribeStreamPushInfoList": 40,
    "DescribeLiveStreamPushInfoList": 500,
    "DescribeGroupProIspPlayInfoList": 200,
    "DescribeCallbackRecordsList": 20,
}
# An action missing from the table gets the smallest documented rate: safe until someone looks.
UNLISTED_QPS = 20
# The part of each second's budget a burst may take at once (see `_bucket`).
BURST_SHARE = 0.1


class ActionLimits:
    """One token bucket per action, created on first use; `acquire` waits for a token."""

    def __init__(
        self,
        qps: Mapping[str, float] = DOCUMENTED_QPS,
        *,
        share: float = 1.0,
        unlisted: float = UNLISTED_QPS,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self._qps = dict(qps)
        self._share = share
        self._unlisted = unlisted
        self._buckets: dict[str, AsyncLimiter] = {}

    def rate(self, action: str) -> float:
        """Requests per second this process allows itself for `action`."""
        return self._qps.get(action, self._unlisted) * self._share

    async def acquire(self, action: str) -> None:
        bucket = self._buckets.get(action)
        if bucket is None:
            bucket = self._buckets[action] = _bucket(self.rate(action))
        await bucket.acquire()


def _bucket(qps: float) -> AsyncLimiter:
    """A leaky bucket that never lets more than `qps` calls into any one-second window.

    A bucket of capacity c leaking at r per second admits up to c + r calls in a second; Tencent
    does not document how it counts, so assume the strictest reading (a sliding window) and
    split the budget: a tenth for bursts, the rest as the steady rate, leaving room for calls
    that arrive a little later than they left.
    """
    capacity = max(1.0, qps * BURST_SHARE)
    rate = max(qps - capacity, qps * (1 - BURST_SHARE), 1e-3)
    return AsyncLimiter(capacity, capacity / rate)
