"""Audience by province and ISP: `DescribeGroupProIspPlayInfoList` over a window.

Per play domain, not per stream (the API has no stream filter). The window defaults to the last
hour, may span at most 31 days within the last 31 days (the API's "one month"), and is widened
to whole 5-minute points (the API's granularity in its example), so requests for "the last
hour" made within the same five minutes share one cache entry: cached by window.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import Field

from receiver.errors import ApiBadRequest
from receiver.history.params import Params
from receiver.insight.cache import Answer
from receiver.storage.selection import Text
from receiver.tencent.monitoring import (
    AUDIENCE_HISTORY_SECONDS,
    AUDIENCE_SPAN_SECONDS,
    Monitoring,
    parse_api_time,
)
from receiver.times import Timestamp, utc
from receiver.web.responses import Resource

POINT_SECONDS: Final = 300
DEFAULT_SPAN_SECONDS: Final = 3600
# Recent windows still fill in (data lags a few minutes): ask again after a minute; older
# windows are final.
RECENT_TTL_SECONDS: Final = 60.0
OLD_TTL_SECONDS: Final = 3600.0
_RECENT: Final = 900.0


class AudienceQuery(Params):
    since: Timestamp | None = Field(default=None, description="Start (default: until - 1 h).")
    until: Timestamp | None = Field(default=None, description="End (default: now).")
    play_domain: list[Text] = Field(
        default_factory=list, max_length=100, description="Play domain; repeat for several."
    )
    province: list[Text] = Field(
        default_factory=list,
        max_length=100,
        description="Province or district as Tencent names it, e.g. Guangdong; repeatable.",
    )
    isp: list[Text] = Field(
        default_factory=list,
        max_length=100,
        description="ISP as Tencent names it, e.g. China Telecom; repeatable.",
    )


class AudiencePoint(Resource):
    time: datetime | None = Field(description="Start of the 5-minute point (UTC).")
    bandwidth_mbps: float | None
    flux_mb: float | None
    requests: int | None = Field(description="New requests.")
    online: int | None = Field(description="Concurrent connections (viewers).")


class AudienceGroup(Resource):
    province: str | None
    isp: str | None
    peak_online: int | None
    flux_mb: float = Field(description="Total over the window.")
    points: list[AudiencePoint]


class Audience(Resource):
    since: datetime
    until: datetime
    play_domains: list[str]
    groups: list[AudienceGroup]
    fetched_at: datetime | None
    cached: bool
    stale: bool
    stale_reason: str | None


@dataclass(frozen=True, slots=True)
class AudienceWindow:
    start: float
    end: float
    play_domains: tuple[str, ...]
    provinces: tuple[str, ...]
    isps: tuple[str, ...]
    now: float

    @property
    def key(self) -> Hashable:
        return ("audience", self.start, self.end, self.play_domains, self.provinces, self.isps)

    @property
    def ttl(self) -> float:
        return RECENT_TTL_SECONDS if self.end > self.now - _RECENT else OLD_TTL_SECONDS


def audience_window(query: AudienceQuery, now: float) -> AudienceWindow:
    """The window to ask about; `ApiBadRequest` names what Tencent would refuse."""
    until = min(query.until if query.until is not None else now, now)
    since = query.since if query.since is not None else until - DEFAULT_SPAN_SECONDS
    if since >= until:
        raise ApiBadRequest("invalid_window", "since must be earlier than until (and now)")
    if until - since > AUDIENCE_SPAN_SECONDS:
        raise ApiBadRequest("invalid_window", "the window may span at most 31 days")
    if since < now - AUDIENCE_HISTORY_SECONDS:
        raise ApiBadRequest("invalid_window", "Tencent keeps audience data for 31 days")
    start = math.floor(since / POINT_SECONDS) * POINT_SECONDS
    if start < now - AUDIENCE_HISTORY_SECONDS:  # rounding must not leave the history
        start = math.ceil(since)
    end = min(math.ceil(until / POINT_SECONDS) * POINT_SECONDS, math.floor(now))
    return AudienceWindow(
        float(start),
        float(end),
        tuple(sorted(set(query.play_domain))),
        tuple(sorted(set(query.province))),
        tuple(sorted(set(query.isp))),
        now,
    )


async def fetch_groups(monitoring: Monitoring, window: AudienceWindow) -> list[AudienceGroup]:
    found = await monitoring.audience(
        window.start,
        window.end,
        play_domains=window.play_domains,
        provinces=window.provinces,
        isps=window.isps,
    )
    return [_group(g) for g in found]


def audience_of(window: AudienceWindow, answer: Answer[list[AudienceGroup]]) -> Audience:
    since, until = utc(window.start), utc(window.end)
    assert since is not None
    assert until is not None
    return Audience(
        since=since,
        until=until,
        play_domains=list(window.play_domains),
        groups=answer.value,
        fetched_at=utc(answer.fetched_at),
        cached=answer.cached,
        stale=answer.stale_reason is not None,
        stale_reason=answer.stale_reason,
    )


def _group(data: dict[str, Any]) -> AudienceGroup:
    details = data.get("DetailInfoList")
    points = (
        [_point(d) for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    )
    online = [p.online for p in points if p.online is not None]
    return AudienceGroup(
        province=data.get("ProvinceName") if isinstance(data.get("ProvinceName"), str) else None,
        isp=data.get("IspName") if isinstance(data.get("IspName"), str) else None,
        peak_online=max(online) if online else None,
        flux_mb=round(sum(p.flux_mb or 0.0 for p in points), 3),
        points=points,
    )


def _point(data: dict[str, Any]) -> AudiencePoint:
    when = data.get("Time")
    try:
        moment = utc(parse_api_time(when)) if isinstance(when, str) else None
    except ValueError:
        moment = None
    return AudiencePoint(
        time=moment,
        bandwidth_mbps=_number(data.get("Bandwidth")),
        flux_mb=_number(data.get("Flux")),
        requests=_integer(data.get("Request")),
        online=_integer(data.get("Online")),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
