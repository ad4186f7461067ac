"""Stream control and monitoring actions for the fake CSS API (`FakeTencent`), plugged in with
`fake.register`: DropLiveStream, ForbidLiveStream, ResumeLiveStream, DescribeLiveForbidStreamList,
DescribeLiveStreamState, DescribeStreamPushInfoList, DescribeGroupProIspPlayInfoList.

Each enforces what the seeds document (team reference `tencent-stream-apis.md` §1.4-1.7, §3;
seed 000, seed 001): required names (`MissingParameter`), types and ranges (`InvalidParameter`,
`InvalidParameterValue`), ForbidLiveStream's 90-day cap and 2,048-byte reason, the forbid
list's page size 1-100, the push data's 7-day history and 3-hour span, the audience's 1-month
history and span (read as 31 days), and both documented time formats on input (ISO UTC with `Z`,
or `YYYY-MM-DD hh:mm:ss` as Beijing time); times are answered in the format the request used
(where the documentation is silent: the examples answer Beijing time for a Beijing request).
Per-action QPS is the base fake's `QPS` table. `ResourceNotFound.*` and the other failures come
from `fake.fail(...)`; `FailedOperation` from `fail_next`.

Test controls: `hold_before` (requests of these actions wait at the door, before any processing,
until `release()`; `release(discard=True)` then answers them without processing, as a request
whose sender died would never be), `hold_after` (processed, but the answer waits), `processed`
(successful calls per action: the count a test asserts), `arrived` (every request's action).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from tests.support.fake_tencent import ApiError, FakeTencent

BEIJING = timezone(timedelta(hours=8))
_UTC_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_BEIJING_FORM = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
MAX_FORBID = timedelta(days=90)
DEFAULT_FORBID = timedelta(days=7)
MAX_REASON_BYTES = 2048
PUSH_HISTORY = timedelta(days=7)
PUSH_SPAN = timedelta(hours=3)
AUDIENCE_HISTORY = timedelta(days=31)
AUDIENCE_SPAN = timedelta(days=31)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class PushPoint:
    """One PushQualityData point of a stream (`at`: unix seconds)."""

    at: float
    stream: str
    sequence: str
    domain: str = "test.domain.com"
    app: str = "live"
    video_fps: int = 25
    video_rate: int = 1_500_000
    audio_fps: int = 43
    audio_rate: int = 128_000
    resolution: str = "1280*720"
    client_ip: str = "203.0.113.7"
    server_ip: str = "198.51.100.9"
    begin: float = 0.0


@dataclass
class AudiencePoint:
    """One CdnPlayStatData point of a (play domain, province, ISP)."""

    at: float
    domain: str
    province: str
    isp: str
    bandwidth: float
    flux: float
    online: int
    request: int


@dataclass
class FakeStreams:
    fake: FakeTencent
    clock: Callable[[], float] = time.time
    live: set[tuple[str, str, str]] = field(default_factory=set)
    forbidden: dict[str, dict[str, Any]] = field(default_factory=dict)  # by StreamName
    push_points: list[PushPoint] = field(default_factory=list)
    audience: list[AudiencePoint] = field(default_factory=list)
    processed: Counter[str] = field(default_factory=Counter)
    arrived: list[str] = field(default_factory=list)
    hold_before: set[str] = field(default_factory=set)
    hold_after: set[str] = field(default_factory=set)
    failed_operation: Counter[str] = field(default_factory=Counter)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _discard: bool = False

    def install(self) -> web.Application:
        """Register the actions on the fake and return its app, with the hold controls."""
        for action, handler in {
            "DropLiveStream": self._drop,
            "ForbidLiveStream": self._forbid,
            "ResumeLiveStream": self._resume,
            "DescribeLiveForbidStreamList": self._forbid_list,
            "DescribeLiveStreamState": self._state,
            "DescribeStreamPushInfoList": self._push_info,
            "DescribeGroupProIspPlayInfoList": self._audience,
        }.items():
            self.fake.register(action, self._counted(action, handler))
        app = self.fake.app()
        app.middlewares.append(self._holds)
        return app

    def release(self, *, discard: bool = False) -> None:
        self._discard = discard
        self._release.set()

    def fail_next(self, action: str, times: int = 1) -> None:
        """Answer the next `times` calls of `action` with `FailedOperation`, unprocessed."""
        self.failed_operation[action] += times

    def count(self, action: str) -> int:
        return self.processed[action]

    @web.middleware
    async def _holds(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        action = request.headers.get("X-TC-Action", "")
        self.arrived.append(action)
        if action in self.hold_before:
            await self._release.wait()
            if self._discard:
                return web.Response(status=503, text="discarded by the test")
        response = await handler(request)
        if action in self.hold_after:
            await self._release.wait()
        return response

    def _counted(
        self, action: str, handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def run(params: dict[str, Any]) -> dict[str, Any]:
            if self.failed_operation[action] > 0:
                self.failed_operation[action] -= 1
                raise ApiError("FailedOperation", "Operation failed.")
            result = handler(params)
            self.processed[action] += 1
            return result

        return run

    # --- stream control ------------------------------------------------------------------

    def _drop(self, params: dict[str, Any]) -> dict[str, Any]:
        names = _names(params)
        # "If you call this API to pause an inactive stream, the request will be considered
        # successful."
        self.live.discard(names)
        return {}

    def _forbid(self, params: dict[str, Any]) -> dict[str, Any]:
        domain, app, stream = _names(params, extra={"ResumeTime", "Reason"})
        now = datetime.fromtimestamp(self.clock(), UTC)
        resume = params.get("ResumeTime")
        if resume is None:
            until = now + DEFAULT_FORBID
        else:
            if not isinstance(resume, str) or not _UTC_FORM.fullmatch(resume):
                raise ApiError("InvalidParameter", "ResumeTime must be YYYY-MM-DDThh:mm:ssZ.")
            until = datetime.strptime(resume, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            if until <= now or until - now > MAX_FORBID:
                raise ApiError(
                    "InvalidParameter", "ResumeTime must be in the future, at most 90 days."
                )
        reason = params.get("Reason", "")
        if not isinstance(reason, str) or len(reason.encode()) > MAX_REASON_BYTES:
            raise ApiError("InvalidParameter", "Reason must be a string of at most 2048 bytes.")
        # By default a forbid applies to the stream name across domains and apps.
        self.forbidden[stream] = {
            "StreamName": stream,
            "AppName": app,
            "DomainName": domain,
            "CreateTime": _beijing(now),
            "ExpireTime": _beijing(until),
        }
        self.live = {names for names in self.live if names[2] != stream}
        return {}

    def _resume(self, params: dict[str, Any]) -> dict[str, Any]:
        _, _, stream = _names(params)
        self.forbidden.pop(stream, None)
        return {}

    def _forbid_list(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"PageNum", "PageSize", "StreamName"})
        page = _integer(params, "PageNum", 1, 1, 10**6)
        size = _integer(params, "PageSize", 10, 1, 100)
        name = params.get("StreamName")
        items = [i for i in self.forbidden.values() if name in (None, i["StreamName"])]
        total_pages = max(1, -(-len(items) // size))
        return {
            "ForbidStreamList": items[(page - 1) * size : page * size],
            "PageNum": page,
            "PageSize": size,
            "TotalNum": len(items),
            "TotalPage": total_pages,
        }

    def _state(self, params: dict[str, Any]) -> dict[str, Any]:
        names = _names(params)
        if names[2] in self.forbidden:
            return {"StreamState": "forbid"}
        return {"StreamState": "active" if names in self.live else "inactive"}

    # --- monitoring ----------------------------------------------------------------------

    def _push_info(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"StreamName", "StartTime", "EndTime", "PushDomain", "AppName"})
        stream = _required(params, "StreamName")
        start, end, beijing = self._window(params, PUSH_HISTORY, PUSH_SPAN)
        domain = params.get("PushDomain")
        app = params.get("AppName") or "live"
        points = [
            p
            for p in self.push_points
            if p.stream == stream
            and start <= p.at <= end
            and domain in (None, p.domain)
            and p.app == app
        ]
        return {"DataInfoList": [_quality(p, beijing) for p in sorted(points, key=lambda p: p.at)]}

    def _audience(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(
            params,
            {
                "StartTime",
                "EndTime",
                "PlayDomains",
                "ProvinceNames",
                "IspNames",
                "MainlandOrOversea",
            },
        )
        start, end, beijing = self._window(params, AUDIENCE_HISTORY, AUDIENCE_SPAN)
        domains = _strings(params, "PlayDomains")
        provinces = _strings(params, "ProvinceNames")
        isps = _strings(params, "IspNames")
        region = params.get("MainlandOrOversea")
        if region not in (None, "Mainland", "Oversea"):
            raise ApiError("InvalidParameter", "MainlandOrOversea must be Mainland or Oversea.")
        groups: dict[tuple[str, str], list[AudiencePoint]] = {}
        for p in self.audience:
            if not start <= p.at <= end:
                continue
            if domains and p.domain not in domains:
                continue
            if provinces and p.province not in provinces:
                continue
            if isps and p.isp not in isps:
                continue
            groups.setdefault((p.province, p.isp), []).append(p)
        data = []
        for (province, isp), points in groups.items():
            by_time: dict[float, list[AudiencePoint]] = {}
            for p in points:
                by_time.setdefault(p.at, []).append(p)
            details = [
                {
                    "Time": _format(at, beijing),
                    "Bandwidth": round(sum(p.bandwidth for p in same), 3),
                    "Flux": round(sum(p.flux for p in same), 3),
                    "Online": sum(p.online for p in same),
                    "Request": sum(p.request for p in same),
                }
                for at, same in sorted(by_time.items())
            ]
            data.append({"ProvinceName": province, "IspName": isp, "DetailInfoList": details})
        return {"DataInfoList": data}

    def _window(
        self, params: dict[str, Any], history: timedelta, span: timedelta
    ) -> tuple[float, float, bool]:
        start, start_beijing = _time(params, "StartTime")
        end, _ = _time(params, "EndTime")
        now = self.clock()
        if end < start:
            raise ApiError("InvalidParameter", "EndTime must not be before StartTime.")
        if end - start > span.total_seconds():
            raise ApiError("InvalidParameter", f"The time span must not exceed {span}.")
        if start < now - history.total_seconds():
            raise ApiError("InvalidParameter", f"Only the last {history.days} days are kept.")
        return start, end, start_beijing


def _quality(p: PushPoint, beijing: bool) -> dict[str, Any]:
    return {
        "Time": _format(p.at, beijing, millis=True),
        "PushDomain": p.domain,
        "AppName": p.app,
        "ClientIp": p.client_ip,
        "BeginPushTime": _format(p.begin, beijing, millis=True),
        "Resolution": p.resolution,
        "VCodec": "H264",
        "ACodec": "AAC",
        "Sequence": p.sequence,
        "VideoFps": p.video_fps,
        "VideoRate": p.video_rate,
        "AudioFps": p.audio_fps,
        "AudioRate": p.audio_rate,
        "LocalTs": 5000,
        "VideoTs": 5032,
        "AudioTs": 5004,
        "MetaVideoRate": p.video_rate // 1000,
        "MetaAudioRate": p.audio_rate // 1000,
        "MateFps": p.video_fps,
        "StreamParam": "",
        "Bandwidth": round((p.video_rate + p.audio_rate) / 1e6, 3),
        "Flux": 1.0,
        "ServerIp": p.server_ip,
    }


def _names(params: dict[str, Any], extra: set[str] | None = None) -> tuple[str, str, str]:
    _only(params, {"DomainName", "AppName", "StreamName", *(extra or set())})
    return (
        _required(params, "DomainName"),
        _required(params, "AppName"),
        _required(params, "StreamName"),
    )


def _required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise ApiError("MissingParameter", f"The {name} parameter is required.")
    if not isinstance(value, str) or not value:
        raise ApiError("InvalidParameter", f"{name} must be a non-empty string.")
    return value


def _only(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError("UnknownParameter", f"Unknown parameter {unknown[0]}.")


def _integer(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError("InvalidParameter", f"{name} must be an integer from {low} to {high}.")
    return value


def _strings(params: dict[str, Any], name: str) -> list[str]:
    value = params.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError("InvalidParameter", f"{name} must be an array of strings.")
    return value


def _time(params: dict[str, Any], name: str) -> tuple[float, bool]:
    """Unix seconds of a documented time parameter, and whether it was Beijing time."""
    value = _required(params, name)
    if _UTC_FORM.fullmatch(value):
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp(), False
    if _BEIJING_FORM.fullmatch(value):
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        return moment.timestamp(), True
    raise ApiError(
        "InvalidParameter", f"{name} must be YYYY-MM-DDThh:mm:ssZ or YYYY-MM-DD hh:mm:ss."
    )


def _format(at: float, beijing: bool, *, millis: bool = False) -> str:
    if beijing:
        moment = datetime.fromtimestamp(at, BEIJING)
        text = moment.strftime("%Y-%m-%d %H:%M:%S")
        return text + f".{moment.microsecond // 1000:03d}" if millis else text
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
