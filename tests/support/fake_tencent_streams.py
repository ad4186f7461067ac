"""The fake's stream actions: Tencent's own records of pushes, live streams and backup groups.

    streams = FakeStreams.install(fake_tencent)
    streams.add_record("push.example.com", "live", "s1", start=t0, end=t1)
    streams.go_live("push.example.com", "live", "s2", at=t2)

Plugged into `FakeTencent` with `fake.register` (its TC3 check, QPS table and failure injection
apply unchanged). Each action takes exactly its documented parameters and enforces its documented
limits (team reference `tencent-stream-apis.md` §1.1, §1.3, §2.1; seeds 001 and 002):

* DescribeLiveStreamEventList: `StartTime` within the last 60 days, `EndTime` not after now and
  at most 30 days after `StartTime`, `PageSize` 1-100, and no entry beyond the first 10,000 of
  a query (a page reaching past it is refused; `TotalNum` still says how many there are).
* DescribeLiveStreamOnlineList: `PageSize` 10-100, at most 20,000 streams listed.
* DescribeBackupStreamList: `Region` required (the `X-TC-Region` header) and one of the regions
  the page lists.

Where the documentation is silent, the choice is written beside the code: a record belongs to a
window when its end time is inside it (the API sorts by end time); a page past the 10,000-entry
cap is `InvalidParameterValue` (the seed names no code for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.support.fake_tencent import ApiError, FakeTencent

HISTORY_SECONDS = 60 * 86400
SPAN_SECONDS = 30 * 86400
ENTRY_CAP = 10_000
ONLINE_CAP = 20_000
REGIONS = frozenset(
    {"ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-seoul",
     "ap-tokyo"}
)  # fmt: skip
EVENT_PARAMS = frozenset(
    {"StartTime", "EndTime", "AppName", "DomainName", "StreamName", "PageNum", "PageSize",
     "IsFilter", "IsStrict", "IsAsc"}
)  # fmt: skip
ONLINE_PARAMS = frozenset({"DomainName", "AppName", "PageNum", "PageSize", "StreamName"})


def iso(unix: float) -> str:
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if value is None:
        raise ApiError("MissingParameter", f"The {name} parameter is required.")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        raise ApiError("InvalidParameterValue", f"{name} is not a UTC time.") from None


def _int(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError("InvalidParameterValue", f"{name} must be an integer in [{low}, {high}].")
    return value


@dataclass
class FakeStreams:
    fake: FakeTencent
    records: list[dict[str, Any]] = field(default_factory=list)  # StreamEventInfo, + "Failed"
    online: list[dict[str, Any]] = field(default_factory=list)  # StreamOnlineInfo
    backup_groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by region

    @classmethod
    def install(cls, fake: FakeTencent) -> FakeStreams:
        streams = cls(fake)
        fake.register("DescribeLiveStreamEventList", streams.event_list)
        fake.register("DescribeLiveStreamOnlineList", streams.online_list)
        fake.register("DescribeBackupStreamList", streams.backup_list)
        return streams

    # --- seeding ---------------------------------------------------------------------------

    def add_record(
        self,
        domain: str,
        app: str,
        stream: str,
        *,
        start: float,
        end: float,
        reason: str = "The client actively interrupts the stream",
        client_ip: str = "203.0.113.7",
        resolution: str = "1280*720",
        failed: bool = False,
    ) -> dict[str, Any]:
        record = {
            "AppName": app,
            "DomainName": domain,
            "StreamName": stream,
            "StreamStartTime": iso(start),
            "StreamEndTime": iso(end),
            "StopReason": reason,
            "Duration": int(end) - int(start),
            "ClientIp": client_ip,
            "Resolution": resolution,
            "Failed": failed,  # the fake's own mark: what IsFilter=1 leaves out
        }
        self.records.append(record)
        return record

    def go_live(self, domain: str, app: str, stream: str, *, at: float) -> None:
        """A push live at Tencent now (another push of the same stream adds a publish time)."""
        for entry in self.online:
            if (entry["DomainName"], entry["AppName"], entry["StreamName"]) == (
                domain, app, stream
            ):  # fmt: skip
                entry["PublishTimeList"].append({"PublishTime": iso(at)})
                return
        self.online.append(
            {
                "StreamName": stream,
                "AppName": app,
                "DomainName": domain,
                "PublishTimeList": [{"PublishTime": iso(at)}],
            }
        )

    def go_offline(self, domain: str, app: str, stream: str) -> None:
        self.online = [
            e
            for e in self.online
            if (e["DomainName"], e["AppName"], e["StreamName"]) != (domain, app, stream)
        ]

    def add_backup_group(
        self, region: str, stream: str, pushes: list[dict[str, Any]], *, optimal: int = 0
    ) -> None:
        """`pushes`: BackupStreamDetailData dicts (DomainName, AppName, PublishTime,
        UpstreamSequence, SourceFrom, MasterFlag)."""
        self.backup_groups.setdefault(region, []).append(
            {"StreamName": stream, "BackupList": pushes, "OptimalEnable": optimal,
             "HostGroupName": ""}
        )  # fmt: skip

    def calls(self, action: str) -> list[dict[str, Any]]:
        return [c.params for c in self.fake.calls if c.action == action]

    # --- the actions -----------------------------------------------------------------------

    def event_list(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, EVENT_PARAMS)
        now = self.fake.clock()
        start, end = _parse(params, "StartTime"), _parse(params, "EndTime")
        if start < now - HISTORY_SECONDS:
            raise ApiError("InvalidParameterValue", "StartTime: only the last 60 days.")
        if end > now + 1:  # the fake's clock and the client's share a second's rounding
            raise ApiError("InvalidParameterValue", "EndTime cannot be later than now.")
        if end < start or end - start > SPAN_SECONDS:
            raise ApiError(
                "InvalidParameterValue", "EndTime must be within 30 days after StartTime."
            )
        page_num = _int(params, "PageNum", 1, 1, 10**6)
        page_size = _int(params, "PageSize", 10, 1, 100)
        is_filter = _int(params, "IsFilter", 0, 0, 1)
        is_strict = _int(params, "IsStrict", 0, 0, 1)
        is_asc = _int(params, "IsAsc", 0, 0, 1)
        if page_num * page_size > ENTRY_CAP:
            raise ApiError("InvalidParameterValue", "Query for up to 10,000 entries is supported.")
        chosen = [
            r
            for r in self.records
            if start <= _parse(r, "StreamEndTime") <= end
            and not (is_filter and r["Failed"])
            and _matches(r, params, strict=bool(is_strict))
        ]
        chosen.sort(key=lambda r: r["StreamEndTime"], reverse=not is_asc)
        page = chosen[(page_num - 1) * page_size : page_num * page_size]
        total = len(chosen)
        return {
            "EventList": [{k: v for k, v in r.items() if k != "Failed"} for r in page],
            "PageNum": page_num,
            "PageSize": page_size,
            "TotalNum": total,
            "TotalPage": -(-total // page_size),
        }

    def online_list(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, ONLINE_PARAMS)
        page_num = _int(params, "PageNum", 1, 1, 10**6)
        page_size = _int(params, "PageSize", 10, 10, 100)
        chosen = [
            e
            for e in self.online
            if params.get("DomainName") in (None, e["DomainName"])
            and params.get("AppName") in (None, e["AppName"])
            and params.get("StreamName") in (None, e["StreamName"])
        ][:ONLINE_CAP]
        page = chosen[(page_num - 1) * page_size : page_num * page_size]
        return {
            "OnlineInfo": page,
            "PageNum": page_num,
            "PageSize": page_size,
            "TotalNum": len(chosen),
            "TotalPage": -(-len(chosen) // page_size),
        }

    def backup_list(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"StreamName"})
        region = self.fake.calls[-1].region  # the call being answered, appended just before
        if not region:
            raise ApiError(
                "MissingParameter", "The request is missing a required parameter Region."
            )
        if region not in REGIONS:
            raise ApiError("UnsupportedRegion", f"The region {region} is not supported.")
        groups = [
            g
            for g in self.backup_groups.get(region, [])
            if params.get("StreamName") in (None, g["StreamName"])
        ]
        return {"StreamInfoList": groups or None}


def _matches(record: dict[str, Any], params: dict[str, Any], *, strict: bool) -> bool:
    for name in ("DomainName", "AppName"):
        if params.get(name) is not None and record[name] != params[name]:
            return False
    wanted = params.get("StreamName")
    if wanted is None:
        return True
    return record["StreamName"] == wanted if strict else wanted in record["StreamName"]


def _only(params: dict[str, Any], allowed: frozenset[str] | set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError("UnknownParameter", f"Unknown parameter {unknown[0]}.")
