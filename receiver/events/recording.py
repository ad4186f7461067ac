"""Recording events: recording file (100), recording status (332), recording exception (341)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from receiver.events.base import Body, CssEvent, seconds


class RecordFile(CssEvent):
    """A finished recording file or segment (reference §3.3)."""

    event_type: Literal[100]
    app: str | None = None
    appname: str | None = None
    stream_id: str | None = None
    channel_id: str | None = None
    file_id: str | None = None
    record_file_id: str | None = None
    record_temp_id: str | None = None
    file_format: str | None = None
    task_id: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    start_time_usec: int | None = None
    end_time_usec: int | None = None
    duration: int | None = None
    file_size: int | None = None
    stream_param: str | None = None
    video_url: str | None = None
    media_start_time: int | None = None
    record_bps: int | None = None
    callback_ext: str | None = None  # a JSON object encoded as a string

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        # The file exists once recording ended; that is when the event happened.
        return seconds(body.get("end_time")) or seconds(body.get("start_time"))


class RecordStatus(CssEvent):
    """Recording task status changes (reference §3.4)."""

    event_type: Literal[332]
    appname: str | None = None
    domain: str | None = None
    event_time: int | None = None
    record_event: str | None = None
    record_detail: str | None = None  # JSON encoded as a string
    task_id: str | None = None
    seq: str | None = None
    session_id: str | None = None
    stream_id: str | None = None


class RecordExceptionDetail(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    type: int | None = None
    occurs: int | None = None
    desc: str | None = None


class RecordException(CssEvent):
    """Recording anomalies, merged per statistics window (reference §3.5)."""

    event_type: Literal[341]
    interface: str | None = None
    domain: str | None = None
    path: str | None = None
    stream_id: str | None = None
    session_id: str | None = None
    file_format: str | None = None
    timestamp: int | None = None
    exception_level: str | None = None
    exception: RecordExceptionDetail | None = None

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        return seconds(body.get("timestamp"))
