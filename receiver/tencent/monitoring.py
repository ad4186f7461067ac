"""Monitoring data: DescribeStreamPushInfoList (one stream's push quality) and
DescribeGroupProIspPlayInfoList (playback by province and ISP), with their time formats.

Facts (team reference `tencent-stream-apis.md` §1.5, §3; seed 000; seed 001 line 14018):
both take `StartTime`/`EndTime` as `YYYY-MM-DDThh:mm:ssZ` (UTC) or `YYYY-MM-DD hh:mm:ss`, which
"represents Beijing time"; push data is kept 7 days and a query spans at most 3 hours (40 QPS);
audience data is kept a month and a query spans at most a month (200 QPS), in points of 5
minutes in the example. Requests here use the Beijing form, as the documented examples do, and
answers are read in either form: a time without a zone is Beijing time (UTC+8, no daylight
saving), `PushQualityData.Time` may carry a fraction (`01:10:39.87`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from receiver.tencent.client import TencentClient

BEIJING: Final = timezone(timedelta(hours=8))
PUSH_HISTORY_SECONDS: Final = 7 * 86_400
PUSH_SPAN_SECONDS: Final = 3 * 3600
# "one month": read as 31 days; a longer window is refused before any call.
AUDIENCE_HISTORY_SECONDS: Final = 31 * 86_400
AUDIENCE_SPAN_SECONDS: Final = 31 * 86_400
_TIME: Final = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,6}))?"
    r"(?P<utc>Z)?"
)


def beijing_text(seconds: float) -> str:
    """`YYYY-MM-DD hh:mm:ss` in Beijing time (whole seconds, rounded down)."""
    return datetime.fromtimestamp(int(seconds), BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_api_time(text: str) -> float:
    """Unix seconds of a time the API answered: ISO UTC with `Z`, else Beijing time."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a Tencent API time: {text[:40]!r}")
    zone = UTC if match["utc"] else BEIJING
    moment = datetime.strptime(f"{match['date']} {match['time']}", "%Y-%m-%d %H:%M:%S")
    fraction = float(f"0.{match['fraction']}") if match["fraction"] else 0.0
    return moment.replace(tzinfo=zone).timestamp() + fraction


class Monitoring:
    """The two monitoring queries on a `TencentClient` (which owns rates and retries)."""

    def __init__(self, client: TencentClient) -> None:
        self.client = client

    async def push_info(
        self, stream: str, domain: str | None, app: str | None, start: float, end: float
    ) -> list[dict[str, Any]]:
        """`PushQualityData` points from `start` to `end` (at most 3 hours apart)."""
        params: dict[str, Any] = {
            "StreamName": stream,
            "StartTime": beijing_text(start),
            "EndTime": beijing_text(end),
        }
        if domain:
            params["PushDomain"] = domain
        if app:
            params["AppName"] = app
        answer = await self.client.call("DescribeStreamPushInfoList", params, idempotent=True)
        return [p for p in answer.get("DataInfoList") or [] if isinstance(p, dict)]

    async def audience(
        self,
        start: float,
        end: float,
        *,
        play_domains: Sequence[str] = (),
        provinces: Sequence[str] = (),
        isps: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """`GroupProIspDataInfo` groups (ProvinceName, IspName, DetailInfoList)."""
        params: dict[str, Any] = {"StartTime": beijing_text(start), "EndTime": beijing_text(end)}
        if play_domains:
            params["PlayDomains"] = list(play_domains)
        if provinces:
            params["ProvinceNames"] = list(provinces)
        if isps:
            params["IspNames"] = list(isps)
        answer = await self.client.call("DescribeGroupProIspPlayInfoList", params, idempotent=True)
        return [g for g in answer.get("DataInfoList") or [] if isinstance(g, dict)]
