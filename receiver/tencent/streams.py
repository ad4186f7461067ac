"""Typed wrappers for the CSS stream actions reconciliation reads (live, 2018-08-01).

    api = LiveStreamApi(client)
    page = await api.event_list(EventListQuery(start=t0, end=t1, page_num=1))
    online = await api.online_list(OnlineListQuery(page_num=1))
    groups = await api.backup_streams(region="ap-guangzhou")

Request and response models follow the API's own data types (seed 001: `StreamEventInfo`,
`StreamOnlineInfo`, `PublishTime`; seed 002: `BackupStreamGroupInfo`, `BackupStreamDetailData`;
the team reference `tencent-stream-apis.md` §1-2). Times go out and come back as UTC
`YYYY-MM-DDThh:mm:ssZ` strings and are unix seconds here. Every action is read-only, so the
client retries each one on transient errors as well as on `RequestLimitExceeded`.

The documented limits live here, once, next to the calls that must keep them: the reconciler
plans its windows and pages from them, and the fake in tests enforces the same numbers from its
own copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_pascal

from receiver.tencent.actions import TencentResponseError
from receiver.tencent.client import TencentClient

# DescribeLiveStreamEventList (seed 001 l.15609): 60 days of history, a window of at most 30
# days, at most 10,000 entries per query (PageNum x PageSize), PageSize 1-100.
EVENT_HISTORY_SECONDS: Final = 60 * 86400
EVENT_SPAN_SECONDS: Final = 30 * 86400
EVENT_ENTRY_CAP: Final = 10_000
EVENT_PAGE_SIZE: Final = 100
# DescribeLiveStreamOnlineList (seed 001 l.15749): PageSize 10-100, at most 20,000 streams.
ONLINE_PAGE_SIZE: Final = 100
ONLINE_STREAM_CAP: Final = 20_000

_T = TypeVar("_T", bound=BaseModel)


def api_time(unix: float) -> str:
    """Unix seconds as the API's UTC time string (whole seconds, rounded down)."""
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_api_time(text: str) -> float:
    """The API's `2019-01-07T12:00:00Z` as unix seconds."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class _ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )


def _unix(value: Any) -> Any:
    return parse_api_time(value) if isinstance(value, str) and value else None


class StreamEventInfo(_ApiModel):
    """One push of a stream as Tencent recorded it. No `Sequence`: a record matches a stored
    session only by identity and time."""

    app_name: str
    domain_name: str
    stream_name: str
    stream_start_time: float | None = None
    stream_end_time: float | None = None
    stop_reason: str = ""
    duration: int | None = None  # seconds
    client_ip: str = ""
    resolution: str = ""

    _times = field_validator("stream_start_time", "stream_end_time", mode="before")(_unix)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.domain_name, self.app_name, self.stream_name)


class EventListPage(_ApiModel):
    event_list: list[StreamEventInfo] = Field(default_factory=list)
    page_num: int = 1
    page_size: int = EVENT_PAGE_SIZE
    total_num: int = 0
    total_page: int = 0

    @field_validator("event_list", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


@dataclass(frozen=True, slots=True)
class EventListQuery:
    """One page of DescribeLiveStreamEventList: successful pushes only (`IsFilter=1`), oldest
    end first (`IsAsc=1`), so pages read in a stable order while new records arrive."""

    start: float
    end: float
    page_num: int = 1
    page_size: int = EVENT_PAGE_SIZE
    domain: str | None = None
    app: str | None = None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "StartTime": api_time(self.start),
            "EndTime": api_time(self.end),
            "PageNum": self.page_num,
            "PageSize": self.page_size,
            "IsFilter": 1,
            "IsAsc": 1,
        }
        if self.domain is not None:
            params["DomainName"] = self.domain
        if self.app is not None:
            params["AppName"] = self.app
        return params


class PublishTime(_ApiModel):
    publish_time: float

    _time = field_validator("publish_time", mode="before")(_unix)


class StreamOnlineInfo(_ApiModel):
    """A stream live at Tencent now; several publish times are several upstream pushes."""

    stream_name: str
    app_name: str
    domain_name: str
    publish_time_list: list[PublishTime] = Field(default_factory=list)

    @field_validator("publish_time_list", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.domain_name, self.app_name, self.stream_name)


class OnlineListPage(_ApiModel):
    online_info: list[StreamOnlineInfo] = Field(default_factory=list)
    page_num: int = 1
    page_size: int = ONLINE_PAGE_SIZE
    total_num: int = 0
    total_page: int = 0

    @field_validator("online_info", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


@dataclass(frozen=True, slots=True)
class OnlineListQuery:
    page_num: int = 1
    page_size: int = ONLINE_PAGE_SIZE
    domain: str | None = None
    app: str | None = None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"PageNum": self.page_num, "PageSize": self.page_size}
        if self.domain is not None:
            params["DomainName"] = self.domain
        if self.app is not None:
            params["AppName"] = self.app
        return params


class BackupStreamDetailData(_ApiModel):
    """One upstream push of a main/backup group. `UpstreamSequence` is the push's unique id,
    the callback's `sequence` [inferred, reference §2.2]; `MasterFlag` 1 marks the main push."""

    domain_name: str
    app_name: str
    publish_time: float | None = None
    upstream_sequence: str
    source_from: str = ""
    master_flag: int = 0

    _time = field_validator("publish_time", mode="before")(_unix)

    @field_validator("upstream_sequence", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value  # 20 digits: never an int


class BackupStreamGroupInfo(_ApiModel):
    stream_name: str
    backup_list: list[BackupStreamDetailData] = Field(default_factory=list)
    optimal_enable: int = 0
    host_group_name: str = ""

    @field_validator("backup_list", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class BackupStreamList(_ApiModel):
    stream_info_list: list[BackupStreamGroupInfo] = Field(default_factory=list)

    @field_validator("stream_info_list", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class LiveStreamApi:
    """The stream actions reconciliation reads; all of them idempotent."""

    def __init__(self, client: TencentClient) -> None:
        self.client = client

    async def event_list(self, query: EventListQuery) -> EventListPage:
        action = "DescribeLiveStreamEventList"
        answer = await self.client.call(action, query.params(), idempotent=True)
        return _validate(action, EventListPage, answer)

    async def online_list(self, query: OnlineListQuery) -> OnlineListPage:
        action = "DescribeLiveStreamOnlineList"
        answer = await self.client.call(action, query.params(), idempotent=True)
        return _validate(action, OnlineListPage, answer)

    async def backup_streams(
        self, *, region: str, stream_name: str | None = None
    ) -> list[BackupStreamGroupInfo]:
        """The main/backup groups live now (`Region` is required by this action)."""
        action = "DescribeBackupStreamList"
        params = {"StreamName": stream_name} if stream_name else {}
        answer = await self.client.call(action, params, idempotent=True, region=region)
        return _validate(action, BackupStreamList, answer).stream_info_list


def _validate(action: str, model: type[_T], answer: dict[str, Any]) -> _T:
    try:
        return model.model_validate(answer)
    except (ValidationError, ValueError) as exc:
        raise TencentResponseError(action, str(exc).splitlines()[0]) from None
