"""Push lifecycle events: push begin (1), stream end (0) and push exception (321)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from receiver.events.base import Body, CssEvent, millis


class StreamEvent(CssEvent):
    """Push begin (1) and stream end (0) share one schema (reference §3.1/3.2)."""

    app: str | None = None
    appname: str | None = None
    stream_id: str | None = None
    channel_id: str | None = None
    event_time: int | None = None
    sequence: str | None = None  # exceeds 2^53: always kept as a string
    node: str | None = None
    user_ip: str | None = None
    stream_param: str | None = None
    errcode: int | None = None
    errmsg: str | None = None
    set_id: int | None = None
    width: int | None = None
    height: int | None = None
    idc_id: int | None = None


class StreamBegin(StreamEvent):
    event_type: Literal[1]


class StreamEnd(StreamEvent):
    event_type: Literal[0]
    push_duration: str | None = None  # milliseconds, sent as a string

    @property
    def push_duration_ms(self) -> int | None:
        """How long the push lasted, or None when CSS did not say."""
        try:
            return int(self.push_duration) if self.push_duration else None
        except ValueError:
            return None


class AbnormalDetail(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    desc: str | None = None
    occur_time: int | None = None  # milliseconds


class AbnormalEvent(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    type: int | None = None
    count: int | None = None
    customer_visible: str | None = None
    event_key: str | None = None
    type_desc_cn: str | None = None
    type_desc_en: str | None = None
    detail: list[AbnormalDetail] = Field(default_factory=list)


class PushException(CssEvent):
    """Push error (321): every problem seen during one reporting window (reference §3.9)."""

    event_type: Literal[321]
    interface: str | None = None
    user_ip: str | None = None
    data_time: int | None = None  # milliseconds
    domain: str | None = None
    path: str | None = None
    report_interval: int | None = None
    sequence: str | None = None
    stream_id: str | None = None
    stream_param: str | None = None
    timeout: int | None = None
    abnormal_event: list[AbnormalEvent] = Field(default_factory=list)

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        return millis(body.get("data_time"))
